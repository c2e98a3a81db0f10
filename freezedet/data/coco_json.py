"""Train / evaluate on any COCO-format json from a LazyConfig, without writing code::

    from freezedet.data.coco_json import coco_json_dataset

    dataloader.train.dataset = L(coco_json_dataset)(
        name="mydata_train", json_file="/data/train.json", image_root="/data/images")
    dataloader.test.dataset = L(coco_json_dataset)(
        name="mydata_val", json_file="/data/val.json", image_root="/data/images",
        filter_empty=False)
    dataloader.evaluator.dataset_name = "mydata_val"

Paths may use any ``PathManager`` prefix, ``freezedet://`` included. Category ids of the json
are mapped to contiguous ids (and back, for evaluation) by detectron2's ``load_coco_json``.
Records go through freezedet's validator (:func:`~freezedet.data.validate.checked_dataset_dicts`,
the same options as every other dataset entry point).
"""

import json
import os

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances
from detectron2.utils.file_io import PathManager

from ..utils.errors import UserFileNotFoundError, UserKeyError, UserValueError
from .validate import checked_dataset_dicts

__all__ = [
    "REQUIRED_FIELDS",
    "check_coco_json",
    "coco_json_dataset",
    "load_json_with_fields",
    "write_coco_json",
]

# what detectron2's load_coco_json reads from every entry of each top-level list
REQUIRED_FIELDS = {
    "images": ("id", "file_name", "height", "width"),
    "annotations": ("image_id", "bbox", "category_id"),
    "categories": ("id", "name"),
}


def check_coco_json(json_file: str) -> dict:
    """Parse ``json_file`` and check that it has what detectron2 needs.

    Returns:
        dict: the parsed json.

    Raises:
        UserFileNotFoundError, UserValueError, UserKeyError: naming the file and the missing /
            bad key (an annotation's ``category_id`` that is not in ``categories`` included).
    """
    local = PathManager.get_local_path(json_file)
    if not os.path.isfile(local):
        raise UserFileNotFoundError(
            f"COCO json {json_file!r} does not exist; set json_file to your annotation file"
        )
    data = load_json_with_fields(json_file, REQUIRED_FIELDS, "a COCO json")
    known = {c["id"] for c in data["categories"]}
    unknown = [a for a in data["annotations"] if a["category_id"] not in known]
    if unknown:
        ids = sorted({a["category_id"] for a in unknown}, key=str)
        raise UserKeyError(
            f"{json_file}: {len(unknown)} annotation(s) have a category_id that is not in "
            f"'categories' (category_id {', '.join(map(str, ids[:10]))}; annotation id "
            f"{unknown[0].get('id')}, image_id {unknown[0]['image_id']}; 'categories' has ids "
            f"{sorted(known, key=str)[:10]}). Add the missing categories or fix those annotations."
        )
    return data


def load_json_with_fields(json_file: str, required: dict, kind: str) -> dict:
    """Parse an existing ``json_file`` and check that each top-level key of ``required`` is a
    list whose items have the fields ``required[key]``; errors name the file, the key or item,
    and what ``kind`` (e.g. "a COCO json") needs."""
    with PathManager.open(json_file) as f:
        try:
            data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserValueError(f"{json_file}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise UserValueError(
            f"{json_file}: the top level is a {type(data).__name__}, not an object with "
            f"{sorted(required)}"
        )
    for key, fields in required.items():
        if key not in data:
            raise UserKeyError(
                f"{json_file}: missing top-level key '{key}' ({kind} needs {sorted(required)})"
            )
        if not isinstance(data[key], list):
            raise UserValueError(
                f"{json_file}: '{key}' is a {type(data[key]).__name__}, not a list"
            )
        for i, item in enumerate(data[key]):
            missing = [k for k in fields if not isinstance(item, dict) or k not in item]
            if missing:
                raise UserKeyError(
                    f"{json_file}: {key}[{i}] lacks {missing} ({kind} needs {fields})"
                )
    return data


def _same_path(a, b) -> bool:
    return a is not None and os.path.abspath(os.path.expanduser(a)) == os.path.abspath(
        os.path.expanduser(b)
    )


def coco_json_dataset(
    *,
    name: str,
    json_file: str,
    image_root: str,
    filter_empty: bool = True,
    skip_bad_images: bool = False,
    verify_images: bool = True,
    high_bit_depth: str = "error",
) -> list:
    """Register ``name`` as a COCO-format dataset (once per process) and return its checked dicts.

    Args:
        name (str): dataset name, for the DatasetCatalog and evaluators
            (``dataloader.evaluator.dataset_name``).
        json_file (str): COCO instances json (``images``, ``annotations``, ``categories``).
        image_root (str): folder the json's ``file_name`` entries are relative to.
        filter_empty (bool): drop images without (non-crowd) annotations: True for training,
            False for test loaders.
        skip_bad_images, verify_images, high_bit_depth: see
            :func:`~freezedet.data.validate.check_records`.

    Returns:
        list[dict]: detectron2 dataset dicts, checked and cleaned by
        :func:`~freezedet.data.validate.checked_dataset_dicts`.
    """
    unset = [k for k, v in (("json_file", json_file), ("image_root", image_root)) if not v]
    if unset:
        raise UserValueError(
            f"coco_json_dataset(name={name!r}): {' and '.join(unset)} not set; set them in your "
            f"config, e.g. dataloader.train.dataset.{unset[0]}=... (and dataloader.test.dataset)"
        )
    if name in DatasetCatalog.list():
        meta = MetadataCatalog.get(name)
        registered = (meta.get("json_file"), meta.get("image_root"))
        if not (_same_path(registered[0], json_file) and _same_path(registered[1], image_root)):
            raise UserValueError(
                f"dataset {name!r} is already registered with json_file={registered[0]!r}, "
                f"image_root={registered[1]!r}; cannot re-register it with "
                f"json_file={json_file!r}, image_root={image_root!r}. Use another name."
            )
    else:
        check_coco_json(json_file)
        if not PathManager.isdir(image_root):
            raise UserFileNotFoundError(
                f"image_root {image_root!r} (the image folder of {json_file}) does not exist"
            )
        register_coco_instances(name, {}, json_file, image_root)
    return checked_dataset_dicts(
        name,
        filter_empty=filter_empty,
        skip_bad_images=skip_bad_images,
        verify_images=verify_images,
        high_bit_depth=high_bit_depth,
    )


def write_coco_json(records, path: str, *, image_root: str, class_names) -> int:
    """detectron2 box records (``XYXY_ABS`` boxes, contiguous ``category_id`` from 0) written as
    a COCO json (category ids from 1, file names relative to ``image_root``), the form of
    docs/getting_started.md's "Your own data"; returns the number of boxes."""
    images, annotations = [], []
    for r in records:
        images.append(
            {
                "id": r["image_id"],
                "file_name": os.path.relpath(r["file_name"], image_root),
                "height": r["height"],
                "width": r["width"],
            }
        )
        for a in r["annotations"]:
            x0, y0, x1, y1 = a["bbox"]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": r["image_id"],
                    "category_id": a["category_id"] + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(class_names)]
    with open(path, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return len(annotations)
