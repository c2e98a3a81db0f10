#!/usr/bin/env python
"""Install detectron2 into the current Python environment, if it has none.

Two routes (see README):

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
   - a ``detectron2._C`` stand-in whose ops raise a clear error.

Run with the Python of the environment to install into: ``.venv/bin/python tools/install_detectron2.py``.
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile

SDIST = "pb1-detectron2==0.6"
SDIST_SHA256 = "5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29"
STANDIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "detectron2_C_standin.py")

# (original text, replacement) pairs applied to the sdist's setup.py; each must match once.
SETUP_PATCHES = [
    ("ext_modules=get_extensions(),", "ext_modules=[],"),
    (
        'package_data={"detectron2.model_zoo": get_model_zoo_configs()},',
        'package_data={"detectron2.model_zoo": ["configs/**/*.yaml", "configs/**/*.py"]},',
    ),
    ('"black==21.4b2",', '"black",'),
]


def _pip(*args):
    return [sys.executable, "-m", "pip", *args]


def _detectron2_importable():
    code = "import detectron2, detectron2.modeling; print(detectron2.__file__)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return r.returncode == 0, r.stdout.strip()


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
    path = os.path.join(tree, "setup.py")
    with open(path) as f:
        text = f.read()
    for old, new in SETUP_PATCHES:
        n = text.count(old)
        if n != 1:
            sys.exit(f"error: {path}: expected '{old}' once, found {n} times; unknown sdist layout")
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
    src = os.environ.get("FREEZEDET_DETECTRON2_SRC")
    if src:
        print(f"install_detectron2: building detectron2 from source at {src}")
        subprocess.run(_pip("install", "--no-build-isolation", "-e", src), check=True)
        return
    ok, where = _detectron2_importable()
    if ok:
        print(f"install_detectron2: using the detectron2 already installed at {where}")
        return
    with tempfile.TemporaryDirectory(prefix="freezedet-d2-") as workdir:
        tree = _download_and_unpack(workdir)
        _patch(tree)
        print(f"install_detectron2: building {SDIST} (pure Python, sha256 verified by pip)")
        subprocess.run(_pip("install", "-q", "--no-deps", "--no-build-isolation", tree), check=True)
    ok, where = _detectron2_importable()
    if not ok:
        sys.exit("error: detectron2 still does not import after installation")
    print(f"install_detectron2: installed at {where}")


if __name__ == "__main__":
    main()
