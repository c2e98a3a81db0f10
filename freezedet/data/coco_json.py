"""Train on any COCO-format json from a LazyConfig, without writing code.

dataloader.train.dataset = L(coco_json_dataset)(
    name="mydata_train", json_file="/data/train.json", image_root="/data/images")
"""

import json
import os

from detectron2.data import DatasetCatalog, MetadataCatalog, get_detection_dataset_dicts
from detectron2.data.datasets import register_coco_instances

__all__ = ["coco_json_dataset", "check_coco_json"]

_REQUIRED = {
    "images": ("id", "file_name"),
    "annotations": ("image_id", "bbox", "category_id"),
    "categories": ("id", "name"),
}


def check_coco_json(json_file: str) -> dict:
    """Parse ``json_file`` and check the keys detectron2 needs; errors name the file and key."""
    if not os.path.isfile(json_file):
        raise FileNotFoundError(f"COCO json {json_file!r} does not exist")
    try:
        with open(json_file) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{json_file}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise ValueError(
            f"{json_file}: top level must be an object with images/annotations/categories"
        )
    for key, fields in _REQUIRED.items():
        if key not in data:
            raise KeyError(
                f"{json_file}: missing top-level key '{key}' (a COCO json needs "
                f"{sorted(_REQUIRED)})"
            )
        for i, item in enumerate(data[key]):
            missing = [k for k in fields if k not in item]
            if missing:
                raise KeyError(f"{json_file}: {key}[{i}] lacks {missing}")
    return data


def coco_json_dataset(*, name: str, json_file: str, image_root: str, filter_empty: bool = True):
    """Register ``name`` as a COCO-format dataset (once) and return its dataset dicts.

    Args:
        name (str): dataset name (used by evaluators: set ``dataloader.evaluator.dataset_name``).
        json_file (str): COCO instances json.
        image_root (str): folder the json's ``file_name`` entries are relative to.
        filter_empty (bool): drop images without annotations (train: True, test: False).
    """
    if name in DatasetCatalog.list():
        meta = MetadataCatalog.get(name)
        registered = (getattr(meta, "json_file", None), getattr(meta, "image_root", None))
        if registered != (json_file, image_root):
            raise ValueError(
                f"dataset {name!r} is already registered with json_file={registered[0]!r}, "
                f"image_root={registered[1]!r}; not {json_file!r}, {image_root!r}. Use another name."
            )
    else:
        check_coco_json(json_file)
        if not os.path.isdir(image_root):
            raise FileNotFoundError(f"image_root {image_root!r} (for {json_file}) does not exist")
        register_coco_instances(name, {}, json_file, image_root)
    return get_detection_dataset_dicts(name, filter_empty=filter_empty)
