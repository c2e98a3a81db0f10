"""Every non-wheel download (and every --no-deps install) is hash-pinned."""

import importlib.util
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHA = re.compile(r"--hash=sha256:[0-9a-f]{64}\b")


def _lines(path):
    with open(os.path.join(ROOT, path)) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]


def test_hashed_requirement_files_pin_every_line():
    for path in ("requirements/hashed.txt", "requirements/nodeps.txt"):
        lines = _lines(path)
        assert lines, path
        for ln in lines:
            assert "==" in ln and SHA.search(ln), f"{path}: {ln!r} is not version- and hash-pinned"
    pinned = {ln.split("==")[0] for ln in _lines("requirements/hashed.txt")}
    assert {"fvcore", "antlr4-python3-runtime"} <= pinned  # the sdists of the stack


def test_detectron2_and_labelme_sdists_are_hash_pinned():
    spec = importlib.util.spec_from_file_location(
        "install_detectron2", os.path.join(ROOT, "tools", "install_detectron2.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.SDIST == "pb1-detectron2==0.6"
    assert mod.SDIST_SHA256 == "5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29"
    from freezedet.data import labelme

    assert re.fullmatch(r"[0-9a-f]{64}", labelme.LABELME_SHA256)
    assert labelme.LABELME_SDIST == "labelme==6.3.1"


def test_makefile_installs_with_require_hashes():
    with open(os.path.join(ROOT, "Makefile")) as f:
        text = f.read()
    assert "--require-hashes -r requirements/hashed.txt" in text
    assert "--require-hashes -r requirements/nodeps.txt" in text
