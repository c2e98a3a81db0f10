# make demo : create .venv, install everything, train + evaluate the frozen-backbone detector
# make test : create .venv, install everything, run the test suite
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.freezedet-installed

.PHONY: install demo test clean-venv format

install: $(STAMP)

$(STAMP): setup.py requirements/base.txt requirements/constraints.txt requirements/hashed.txt requirements/nodeps.txt tools/install_detectron2.py tools/detectron2_C_standin.py tools/fetch_data.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=23"
	$(PIP) install -q --no-deps --require-hashes -r requirements/hashed.txt
	$(PIP) install -q -c requirements/constraints.txt -r requirements/base.txt
	$(PIP) install -q --no-deps --require-hashes -r requirements/nodeps.txt
	$(PY) tools/install_detectron2.py
	$(PIP) install -q --no-deps --no-build-isolation -e .
	$(PY) tools/fetch_data.py
	$(PY) -c "import freezedet, detectron2; print('freezedet', freezedet.__version__, 'on detectron2', detectron2.__version__)"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) tools/demo.py

test: $(STAMP)
	$(PY) -m pytest -q tests

format: $(STAMP)
	$(PY) -m black -l 100 freezedet tools tests configs setup.py

clean-venv:
	rm -rf $(VENV)
