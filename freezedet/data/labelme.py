"""labelme's VOC example with polygon masks: 3 real photos, for instance-segmentation runs.

The PyPI sdist ``labelme==6.3.1`` (hash-pinned) carries
``examples/instance_segmentation/data_dataset_coco``: ``annotations.json`` (COCO format, 21
categories: ``_background_`` with id 0, then the 20 VOC classes with ids 1-20) and
``JPEGImages/`` (3 photos, 12 polygon-annotated objects). :func:`fetch_labelme_coco` puts only
those two into ``data_root()/labelme_coco`` (``tools/fetch_data.py``, run by ``make install``).

``labelme_voc_train`` is registered from it with detectron2's ``load_coco_json``, the unused
``_background_`` category dropped and the 20 VOC ids remapped to contiguous 0-19.
"""

import glob
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

from ..utils.file_io import data_root, sha256_file

__all__ = [
    "LABELME_SDIST",
    "LABELME_SHA256",
    "labelme_dir",
    "download_labelme_sdist",
    "extract_labelme_coco",
    "fetch_labelme_coco",
    "labelme_categories",
    "load_labelme",
    "register_labelme",
]

LABELME_SDIST = "labelme==6.3.1"
LABELME_SHA256 = "2947e0d8341a92faa7b3ee50cf4b672f838051c6bf24892526e95b64fd3a707e"
DATASET_NAME = "labelme_voc_train"
_EXAMPLE = "examples/instance_segmentation/data_dataset_coco"
# only these parts of the example folder are extracted (not its Visualization/ renderings)
_KEEP = ("annotations.json", "JPEGImages/")


def labelme_dir() -> str:
    return os.path.join(data_root(), "labelme_coco")


def _missing_files(root: str):
    """Files ``root`` lacks to be a complete copy (``[]`` if complete)."""
    json_file = os.path.join(root, "annotations.json")
    if not os.path.isfile(json_file):
        return [json_file]
    try:
        with open(json_file) as f:
            images = json.load(f)["images"]
    except (ValueError, KeyError):
        return [json_file]
    paths = [os.path.join(root, im["file_name"]) for im in images]
    return [p for p in paths if not os.path.isfile(p)] if paths else [json_file]


def download_labelme_sdist(workdir: str) -> str:
    """Let pip fetch the hash-pinned labelme sdist into ``workdir``.

    Returns:
        str: the sdist archive, or, if pip verified and unpacked it but then failed to prepare
        its metadata (its build backend could not be installed), the unpacked source tree.
    """
    req = os.path.join(workdir, "requirements.txt")
    with open(req, "w") as f:
        f.write(f"{LABELME_SDIST} --hash=sha256:{LABELME_SHA256}\n")
    dest = os.path.join(workdir, "dl")
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
        "--no-clean", "--require-hashes", "-r", req, "-d", dest,
    ]  # fmt: skip
    # TMPDIR: with --no-clean, pip's unpacked tree stays inside workdir, which we delete
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, TMPDIR=workdir))
    archives = glob.glob(os.path.join(dest, "labelme-*.tar.gz"))
    if archives:
        digest = sha256_file(archives[0])
        if digest != LABELME_SHA256:
            raise RuntimeError(f"{archives[0]} has sha256 {digest}, expected {LABELME_SHA256}")
        return archives[0]
    trees = glob.glob(os.path.join(workdir, "pip-*", "*", _EXAMPLE))
    # pip checks the hash before unpacking, so an unpacked tree is the verified sdist
    if "DO NOT MATCH THE HASHES" in r.stderr or len(trees) != 1:
        raise RuntimeError(
            f"could not obtain {LABELME_SDIST} (sha256 {LABELME_SHA256}) with pip; "
            f"pip said:\n{r.stdout[-1000:]}{r.stderr[-2000:]}"
        )
    return trees[0][: -len(_EXAMPLE)]


def _copy_members(source: str, staging: str):
    """Copy ``_EXAMPLE/{_KEEP}`` of an sdist archive or unpacked tree into ``staging``."""
    if os.path.isdir(source):
        example = os.path.join(source, _EXAMPLE)
        shutil.copyfile(
            os.path.join(example, "annotations.json"), os.path.join(staging, "annotations.json")
        )
        shutil.copytree(os.path.join(example, "JPEGImages"), os.path.join(staging, "JPEGImages"))
        return
    try:
        tar = tarfile.open(source)
    except (OSError, tarfile.TarError) as e:
        raise RuntimeError(f"{source}: not a readable sdist archive ({e})") from e
    with tar:
        for member in tar.getmembers():
            # "labelme-6.3.1/examples/..." -> path inside the example folder
            rel = member.name.split("/", 1)[-1]
            if not (member.isfile() and rel.startswith(_EXAMPLE + "/")):
                continue
            rel = rel[len(_EXAMPLE) + 1 :]
            if not rel.startswith(_KEEP) or ".." in rel.split("/"):
                continue
            target = os.path.join(staging, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with tar.extractfile(member) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)


def extract_labelme_coco(source: str, dest: str) -> str:
    """Put ``annotations.json`` and ``JPEGImages/`` of labelme's COCO example into ``dest``.

    ``source`` is the sdist archive or its unpacked tree. The copy is staged beside ``dest`` and
    renamed into place, so ``dest`` is either absent or complete. Returns ``dest``.
    """
    parent = os.path.dirname(os.path.abspath(dest))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".labelme-", dir=parent)
    try:
        _copy_members(source, staging)
        missing = _missing_files(staging)
        if missing:
            raise RuntimeError(
                f"{source} lacks {_EXAMPLE}/ {[os.path.relpath(m, staging) for m in missing]}; "
                f"is it the {LABELME_SDIST} sdist?"
            )
        os.chmod(staging, 0o755)  # mkdtemp makes it private
        if os.path.isdir(dest):
            shutil.rmtree(dest)
        try:
            os.replace(staging, dest)
        except OSError:
            # another process put a copy in place meanwhile; fine if that one is complete
            if _missing_files(dest):
                raise
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging)
    return dest


def fetch_labelme_coco(dest: str = None) -> str:
    """Make sure labelme's COCO example is in ``dest`` (default :func:`labelme_dir`), fetching
    the hash-pinned sdist with pip if it is not complete yet. Returns ``dest``."""
    dest = dest or labelme_dir()
    if not _missing_files(dest):
        return dest
    with tempfile.TemporaryDirectory(prefix="freezedet-labelme-") as workdir:
        return extract_labelme_coco(download_labelme_sdist(workdir), dest)


def _json_file() -> str:
    root = labelme_dir()
    missing = _missing_files(root)
    if missing:
        raise FileNotFoundError(
            f"labelme's example data is incomplete in {root} (missing {missing[0]}). Run "
            "`python tools/fetch_data.py` (part of `make install`), or set FREEZEDET_DATA to the "
            "folder that holds labelme_coco/."
        )
    return os.path.join(root, "annotations.json")


def labelme_categories(json_file: str):
    """(thing_classes, {json category id: contiguous id}) without ``_background_``."""
    with open(json_file) as f:
        cats = sorted(json.load(f)["categories"], key=lambda c: c["id"])
    keep = [c for c in cats if c["name"] != "_background_"]
    return [c["name"] for c in keep], {c["id"]: i for i, c in enumerate(keep)}


def _set_metadata(json_file: str):
    classes, id_map = labelme_categories(json_file)
    MetadataCatalog.get(DATASET_NAME).set(
        thing_classes=classes, thing_dataset_id_to_contiguous_id=id_map
    )
    return id_map


def load_labelme():
    """Dataset dicts of ``labelme_voc_train`` (polygon masks, contiguous category ids)."""
    json_file = _json_file()
    id_map = _set_metadata(json_file)
    # with dataset_name=None load_coco_json keeps the json's ids (and the background category,
    # which it would otherwise count as class 0); the remap is done here
    dicts = load_coco_json(json_file, labelme_dir(), dataset_name=None)
    for d in dicts:
        for a in d["annotations"]:
            if a["category_id"] not in id_map:
                raise ValueError(
                    f"{json_file}: image {d['file_name']} has an object of category id "
                    f"{a['category_id']}, which is _background_ or unknown"
                )
            a["category_id"] = id_map[a["category_id"]]
    return dicts


def register_labelme():
    """Register ``labelme_voc_train``; its classes are known at once if the data is present."""
    if DATASET_NAME in DatasetCatalog.list():
        return
    DatasetCatalog.register(DATASET_NAME, load_labelme)
    MetadataCatalog.get(DATASET_NAME).set(evaluator_type="coco", source=LABELME_SDIST)
    if not _missing_files(labelme_dir()):
        _set_metadata(os.path.join(labelme_dir(), "annotations.json"))


register_labelme()
