#!/usr/bin/env python
"""Install detectron2 into the current Python environment, if it has none.

Two routes (docs/detectron2_compatibility.md):

1. detectron2 is already importable (e.g. built from source by the user): nothing to do.
   ``FREEZEDET_DETECTRON2_SRC=/path/to/detectron2`` installs such a source checkout (with its
   compiled ops) instead of the PyPI sdist.
2. Otherwise, PyPI ``pb1-detectron2==0.6``: Python sources byte-identical to detectron2 v0.6,
   without ``csrc/``. Its setup.py cannot build as is (no C++ sources; it imports torch; its
   metadata carries a direct-URL extra that pip refuses). We let pip download it with
   ``--require-hashes`` (the sdist's sha256 is pinned below, so pip verifies it before
   unpacking), then build the unpacked tree with:
   - no C++ extension (torchvision supplies nms / RoIAlign),
   - the model-zoo configs under ``detectron2/model_zoo/configs`` packaged,
   - ``black`` unpinned (v0.6 pins black==21.4b2, whose CLI breaks with current click),
   - a ``detectron2._C`` stand-in whose ops raise a clear error,
   - two v0.6 modules that do not import with current setuptools / torch patched to what detectron2
     main has (see ``SOURCE_PATCHES``), so detectron2's own API works in the venv without
     ``import freezedet``: ``detectron2.model_zoo`` uses ``pkg_resources`` (removed from
     setuptools 81) for a path next to its own file, and ``detectron2.export`` imports caffe2
     (removed from torch 2) at package level, which broke ``TracingAdapter`` with it.
   A build made by an older version of this script (``FREEZEDET_BUILD`` of the installed stand-in
   below that of ``tools/detectron2_C_standin.py``) is rebuilt.

Pinning setuptools<81 instead would bring ``pkg_resources`` back, but it warns on every import
(deprecated, "slated for removal"), holds back the whole venv's build tooling, and leaves caffe2
unsolved; patching the two modules as detectron2 main did touches only this venv's detectron2.
``freezedet.compat`` applies the same two fixes at run time (``import freezedet``) to a v0.6 that
was installed some other way.

Run with the Python of the environment to install into: ``.venv/bin/python tools/install_detectron2.py``.
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

SDIST = "pb1-detectron2==0.6"
SDIST_SHA256 = "5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29"
STANDIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "detectron2_C_standin.py")

# caffe2 optional, as on detectron2 main; its exporter's names say what to use instead
EXPORT_CAFFE2_OPTIONAL = """\
# caffe2 is optional (patched by freezedet's tools/install_detectron2.py, as on detectron2 main).
try:
    from caffe2.proto import caffe2_pb2 as _caffe2_pb2  # noqa: F401
except ImportError:
    _CAFFE2_EXPORTER = (
        "Caffe2Tracer",
        "Caffe2Model",
        "export_caffe2_model",
        "export_onnx_model",
        "add_export_config",
    )

    def __getattr__(name):
        if name in _CAFFE2_EXPORTER:
            raise ImportError(
                f"detectron2.export.{name} is detectron2's caffe2 exporter, which needs caffe2 "
                "(removed from PyTorch 2: torch<2 built with caffe2). Without caffe2, export "
                "with detectron2.export.TracingAdapter (torch.jit.trace) or "
                "detectron2.export.scripting_with_instances.",
                name="caffe2",
            )
        raise AttributeError(f"module 'detectron2.export' has no attribute {name!r}")

else:
    from .api import *

"""

# file in the sdist -> (original text, replacement) pairs; each original must match once.
SOURCE_PATCHES = {
    "setup.py": [
        ("ext_modules=get_extensions(),", "ext_modules=[],"),
        (
            'package_data={"detectron2.model_zoo": get_model_zoo_configs()},',
            'package_data={"detectron2.model_zoo": ["configs/**/*.yaml", "configs/**/*.py"]},',
        ),
        ('"black==21.4b2",', '"black",'),
    ],
    "detectron2/model_zoo/model_zoo.py": [
        ("import pkg_resources\n", ""),
        (
            "pkg_resources.resource_filename(\n"
            '        "detectron2.model_zoo", os.path.join("configs", config_path)\n'
            "    )",
            'os.path.join(os.path.dirname(__file__), "configs", config_path)',
        ),
    ],
    "detectron2/export/__init__.py": [("from .api import *\n", EXPORT_CAFFE2_OPTIONAL)],
}


def _pip(*args):
    return [sys.executable, "-m", "pip", *args]


def _standin_build() -> int:
    with open(STANDIN) as f:
        return int(re.search(r"^FREEZEDET_BUILD = (\d+)$", f.read(), re.M).group(1))


_PROBE = """
import detectron2, detectron2.modeling
from detectron2 import _C
print(detectron2.__file__)
build = getattr(_C, "FREEZEDET_BUILD", 1)  # build 1's stand-in answers every name with an op
print((build if isinstance(build, int) else 1) if getattr(_C, "FREEZEDET_STANDIN", False) else 0)
"""


def _installed_detectron2():
    """(importable, location, build): build is 0 unless freezedet built it (pure Python)."""
    r = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True)
    if r.returncode != 0:
        return False, "", 0
    where, build = r.stdout.strip().splitlines()[-2:]
    return True, where, int(build)


def _download_and_unpack(workdir):
    """Return the unpacked, hash-verified sdist tree."""
    req = os.path.join(workdir, "requirements.txt")
    with open(req, "w") as f:
        f.write(f"{SDIST} --hash=sha256:{SDIST_SHA256}\n")
    env = dict(os.environ, TMPDIR=workdir)
    dest = os.path.join(workdir, "dl")
    cmd = _pip(
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--no-build-isolation",
        "--no-clean",
        "--require-hashes",
        "-r",
        req,
        "-d",
        dest,
    )
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    # pip unpacks the (hash-checked) sdist, then rejects its metadata's direct-URL extra; with
    # --no-clean the verified tree stays. If a future pip saves the archive instead, use that.
    archives = glob.glob(os.path.join(dest, "*.tar.gz"))
    if archives:
        shutil.unpack_archive(archives[0], os.path.join(workdir, "src"))
        trees = glob.glob(os.path.join(workdir, "src", "*", "setup.py"))
    else:
        trees = glob.glob(os.path.join(workdir, "pip-download-*", "*", "setup.py"))
    if "THESE PACKAGES DO NOT MATCH THE HASHES" in r.stderr or len(trees) != 1:
        sys.exit(
            f"error: could not obtain a hash-verified {SDIST} (sha256 {SDIST_SHA256}).\n"
            f"pip said:\n{r.stderr[-3000:]}"
        )
    return os.path.dirname(trees[0])


def _patch(tree):
    for name, patches in SOURCE_PATCHES.items():
        path = os.path.join(tree, name)
        with open(path) as f:
            text = f.read()
        for old, new in patches:
            n = text.count(old)
            if n != 1:
                sys.exit(
                    f"error: {path}: expected '{old}' once, found {n} times; unknown sdist layout"
                )
            text = text.replace(old, new)
        with open(path, "w") as f:
            f.write(text)
    shutil.copyfile(STANDIN, os.path.join(tree, "detectron2", "_C.py"))
    n_configs = len(
        glob.glob(os.path.join(tree, "detectron2/model_zoo/configs/**/*.yaml"), recursive=True)
    )
    if n_configs < 50:
        sys.exit(f"error: {tree}: only {n_configs} model-zoo configs found; unknown sdist layout")


def main():
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    src = os.environ.get("FREEZEDET_DETECTRON2_SRC")
    if src:
        print(f"install_detectron2: building detectron2 from source at {src}")
        subprocess.run(_pip("install", "--no-build-isolation", "-e", src), check=True)
        return
    ok, where, build = _installed_detectron2()
    current = _standin_build()
    if ok and build in (0, current):
        print(f"install_detectron2: using the detectron2 already installed at {where}")
        return
    if ok:
        print(f"install_detectron2: rebuilding {SDIST} at {where} (build {build} -> {current})")
    with tempfile.TemporaryDirectory(prefix="freezedet-d2-") as workdir:
        tree = _download_and_unpack(workdir)
        _patch(tree)
        print(f"install_detectron2: building {SDIST} (pure Python, sha256 verified by pip)")
        cmd = _pip("install", "-q", "--no-deps", "--no-build-isolation", "--force-reinstall", tree)
        subprocess.run(cmd, check=True)
    ok, where, build = _installed_detectron2()
    if not ok or build != current:
        sys.exit(f"error: detectron2 does not import as build {current} after installation")
    print(f"install_detectron2: installed at {where}")


if __name__ == "__main__":
    main()
