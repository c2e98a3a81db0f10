"""labelme's VOC example with polygon masks: 3 real photos, for mask tests.

The PyPI sdist ``labelme==6.3.1`` (hash-pinned) carries
``examples/instance_segmentation/data_dataset_coco`` (``annotations.json`` + ``JPEGImages/``).
:func:`fetch_labelme_coco` extracts only that folder to ``data_root()/labelme_coco`` (run by
``tools/fetch_data.py`` during ``make install``); ``labelme_voc_train`` is registered from it with
the ``_background_`` category dropped and ids made contiguous.
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

from .paths import data_root

__all__ = ["LABELME_SDIST", "labelme_dir", "fetch_labelme_coco", "load_labelme", "register_labelme"]

LABELME_SDIST = (
    "labelme==6.3.1",
    "2947e0d8341a92faa7b3ee50cf4b672f838051c6bf24892526e95b64fd3a707e",
)
_MEMBER = "examples/instance_segmentation/data_dataset_coco/"


def labelme_dir() -> str:
    return os.path.join(data_root(), "labelme_coco")


def _complete(path: str) -> bool:
    return (
        os.path.isfile(os.path.join(path, "annotations.json"))
        and len(glob.glob(os.path.join(path, "JPEGImages", "*.jpg"))) >= 3
    )


def fetch_labelme_coco(dest: str = None) -> str:
    """Extract labelme's COCO example from its hash-verified sdist (pip download); idempotent."""
    dest = dest or labelme_dir()
    if _complete(dest):
        return dest
    with tempfile.TemporaryDirectory(prefix="freezedet-labelme-") as tmp:
        req = os.path.join(tmp, "req.txt")
        with open(req, "w") as f:
            f.write(f"{LABELME_SDIST[0]} --hash=sha256:{LABELME_SDIST[1]}\n")
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--require-hashes",
            "-r",
            req,
            "-d",
            tmp,
        ]
        r = subprocess.run(cmd, capture_output=True, text=True)
        archives = glob.glob(os.path.join(tmp, "labelme-*.tar.gz"))
        if not archives:
            raise RuntimeError(f"could not download {LABELME_SDIST[0]}:\n{r.stderr[-2000:]}")
        staging = tempfile.mkdtemp(
            prefix=".labelme-",
            dir=(
                os.path.dirname(os.path.abspath(dest))
                if os.path.isdir(os.path.dirname(os.path.abspath(dest)))
                else None
            ),
        )
        with tarfile.open(archives[0]) as tar:
            for member in tar.getmembers():
                rel = member.name.split("/", 1)[-1]
                if rel.startswith(_MEMBER) and member.isfile() and "Visualization" not in rel:
                    target = os.path.join(staging, rel[len(_MEMBER) :])
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    with tar.extractfile(member) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out)
        if not _complete(staging):
            raise RuntimeError(f"{archives[0]} lacks {_MEMBER}; unexpected sdist layout")
        os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
        if os.path.isdir(dest):
            shutil.rmtree(dest)
        os.replace(staging, dest)
    return dest


def load_labelme():
    root = labelme_dir()
    if not _complete(root):
        raise FileNotFoundError(
            f"labelme's example data is not in {root}. Run `python tools/fetch_data.py` "
            "(part of `make install`) or set FREEZEDET_DATA."
        )
    json_file = os.path.join(root, "annotations.json")
    with open(json_file) as f:
        cats = sorted(json.load(f)["categories"], key=lambda c: c["id"])
    keep = [c for c in cats if c["name"] != "_background_"]
    id_map = {c["id"]: i for i, c in enumerate(keep)}
    # without a dataset name, load_coco_json keeps the json's category ids; remap them here
    dicts = load_coco_json(json_file, root, dataset_name=None)
    for d in dicts:
        d["annotations"] = [
            dict(a, category_id=id_map[a["category_id"]])
            for a in d["annotations"]
            if a["category_id"] in id_map
        ]
    MetadataCatalog.get("labelme_voc_train").set(
        thing_classes=[c["name"] for c in keep],
        thing_dataset_id_to_contiguous_id=id_map,
    )
    return dicts


def register_labelme():
    if "labelme_voc_train" in DatasetCatalog.list():
        return
    DatasetCatalog.register("labelme_voc_train", load_labelme)
    MetadataCatalog.get("labelme_voc_train").set(evaluator_type="coco")


register_labelme()
