"""LVIS v1 (Gupta et al., "LVIS: A Dataset for Large Vocabulary Instance Segmentation", CVPR 2019)
and any LVIS-format json, registered from a json path and an image root.

Records are read by detectron2's :func:`~detectron2.data.datasets.load_lvis_json` (which uses the
``lvis`` package). Metadata comes from the json's own ``categories`` rather than detectron2's
built-in 1203-name list, so any category set works (a subset, a synthetic long-tail set, a later
LVIS version):

- ``thing_classes``: category names in id order; ``thing_dataset_id_to_contiguous_id``: json id ->
  0-based index (detectron2's ``LVISEvaluator`` maps predictions back with it);
- ``class_image_count``: images per category (the json's ``image_count``, else counted from
  the annotations); ``class_instance_count``: annotated instances per category (counted from
  the annotations; what Cui et al.'s effective number of samples counts);
  ``class_frequency``: LVIS's ``"r"`` / ``"c"`` / ``"f"`` group per category (the json's
  ``frequency``, else derived from the image counts with LVIS's thresholds: rare 1-10 images,
  common 11-100, frequent > 100).

Real LVIS lives where detectron2 expects it: ``$DETECTRON2_DATASETS/lvis/lvis_v1_{train,val}.json``
with COCO 2017 images in ``$DETECTRON2_DATASETS/coco/{train,val}2017/`` (``DETECTRON2_DATASETS``
defaults to ``datasets``); see :func:`builtin_dataset_path`. Each image's ``coco_url`` names its
split folder and file, as in LVIS v1 (that is how ``load_lvis_json`` finds the file).
"""

import os
from collections import defaultdict
from functools import partial
from typing import Dict, List, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_lvis_json
from detectron2.utils.file_io import PathManager

from ..utils.errors import UserFileNotFoundError, UserValueError
from .coco_json import load_json_with_fields
from .validate import checked_dataset_dicts

__all__ = [
    "builtin_dataset_root",
    "builtin_dataset_path",
    "check_lvis_json",
    "lvis_metadata",
    "register_lvis_json",
    "lvis_json_dataset",
    "DatasetClassCounts",
    "category_image_counts",
    "category_instance_counts",
    "records_to_lvis",
]


# LVIS's frequency groups, by number of training images a category is annotated in
RARE_MAX_IMAGES, COMMON_MAX_IMAGES = 10, 100
_REQUIRED = {
    "images": ("id", "height", "width", "coco_url"),
    "annotations": ("id", "image_id", "bbox", "category_id", "segmentation"),
    "categories": ("id", "name"),
}
_HOW_TO_GET = (
    "Download LVIS v1 (https://www.lvisdataset.org/dataset: lvis_v1_{{train,val}}.json into "
    "$DETECTRON2_DATASETS/lvis/, COCO 2017 images into $DETECTRON2_DATASETS/coco/), set "
    "DETECTRON2_DATASETS (now {root!r}) to the folder holding them, or point the config's "
    "dataset json_file / image_root at your copy."
)


def builtin_dataset_root() -> str:
    """``$DETECTRON2_DATASETS`` (default ``datasets``), detectron2's root for COCO / LVIS."""
    return os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))


def builtin_dataset_path(*parts: str) -> str:
    """A path below :func:`builtin_dataset_root`; configs use it at load time, as detectron2's
    built-in registrations read the variable at import time."""
    return os.path.join(builtin_dataset_root(), *parts)


def check_lvis_json(json_file: str) -> dict:
    """Parse ``json_file`` and check it has what ``load_lvis_json`` and LVIS evaluation read.

    Raises:
        FileNotFoundError, ValueError, KeyError: naming the file and the missing / bad key.
    """
    if not PathManager.isfile(json_file):
        raise UserFileNotFoundError(
            f"LVIS json {json_file!r} does not exist. "
            + _HOW_TO_GET.format(root=builtin_dataset_root())
        )
    return load_json_with_fields(json_file, _REQUIRED, "an LVIS json")


def _frequency(image_count: int) -> str:
    if image_count <= RARE_MAX_IMAGES:
        return "r"
    return "c" if image_count <= COMMON_MAX_IMAGES else "f"


def lvis_metadata(data: dict) -> Dict:
    """detectron2 metadata for a parsed LVIS-format json (see the module docstring)."""
    cats = sorted(data["categories"], key=lambda c: c["id"])
    images_of, instances_of = defaultdict(set), defaultdict(int)
    for a in data["annotations"]:
        images_of[a["category_id"]].add(a["image_id"])
        instances_of[a["category_id"]] += 1
    counts = [int(c.get("image_count", len(images_of[c["id"]]))) for c in cats]
    freqs = [c.get("frequency") or _frequency(n) for c, n in zip(cats, counts)]
    bad = [(c["id"], f) for c, f in zip(cats, freqs) if f not in ("r", "c", "f")]
    assert not bad, f"category frequency must be 'r', 'c' or 'f'; got (id, frequency) {bad}"
    return {
        "thing_classes": [c["name"] for c in cats],
        "thing_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(cats)},
        "class_image_count": counts,
        "class_instance_count": [instances_of[c["id"]] for c in cats],
        "class_frequency": freqs,
    }


def _load(json_file: str, image_root: str, id_map: Dict[int, int]) -> List[Dict]:
    # dataset_name=None: load_lvis_json would otherwise impose its built-in 1203-name metadata;
    # it then stores json id - 1, mapped here to our contiguous ids
    dicts = load_lvis_json(json_file, image_root, dataset_name=None)
    for d in dicts:
        for a in d["annotations"]:
            a["category_id"] = id_map[a["category_id"] + 1]
    return dicts


def register_lvis_json(name: str, json_file: str, image_root: str) -> None:
    """Register ``name`` (lazily loaded, ``evaluator_type="lvis"``) with metadata from the json.

    Args:
        name (str): dataset name for the DatasetCatalog and evaluators.
        json_file (str): LVIS-format json (any ``PathManager`` path).
        image_root (str): folder holding the split folders named by each image's ``coco_url``
            (for LVIS v1: the COCO folder with ``train2017/`` and ``val2017/``).
    """
    data = check_lvis_json(json_file)
    if not PathManager.isdir(image_root):
        raise UserFileNotFoundError(
            f"image_root {image_root!r} (images of {json_file}) does not exist. "
            + _HOW_TO_GET.format(root=builtin_dataset_root())
        )
    meta = lvis_metadata(data)
    # load_lvis_json joins image_root and the split folder by string concatenation
    root = os.path.join(image_root, "")
    DatasetCatalog.register(
        name, partial(_load, json_file, root, meta["thing_dataset_id_to_contiguous_id"])
    )
    MetadataCatalog.get(name).set(
        json_file=json_file, image_root=image_root, evaluator_type="lvis", **meta
    )


def lvis_json_dataset(
    *,
    name: str,
    json_file: str,
    image_root: str,
    filter_empty: bool = True,
    skip_bad_images: bool = False,
    verify_images: bool = True,
    high_bit_depth: str = "error",
) -> List[Dict]:
    """Register ``name`` from an LVIS-format json (once per process) and return its checked dicts.

    Args:
        name (str): dataset name (``dataloader.evaluator.dataset_name`` for the test loader).
        json_file (str): LVIS-format json.
        image_root (str): see :func:`register_lvis_json`.
        filter_empty (bool): drop images without annotations (training), keep them (testing).
        skip_bad_images, verify_images, high_bit_depth: see
            :func:`~freezedet.data.validate.check_records` (the LVIS recipes turn
            ``verify_images`` off: decoding 120k COCO images once takes a while).

    Returns:
        list[dict]: detectron2 dataset dicts (checked by
        :func:`~freezedet.data.validate.checked_dataset_dicts`).
    """
    if name in DatasetCatalog.list():
        meta = MetadataCatalog.get(name)
        if (meta.get("json_file"), meta.get("image_root")) != (json_file, image_root):
            raise UserValueError(
                f"dataset {name!r} is already registered with json_file="
                f"{meta.get('json_file')!r}, image_root={meta.get('image_root')!r}; cannot "
                f"re-register it with json_file={json_file!r}, image_root={image_root!r}. "
                "Use another name."
            )
    else:
        register_lvis_json(name, json_file, image_root)
    return checked_dataset_dicts(
        name,
        filter_empty=filter_empty,
        skip_bad_images=skip_bad_images,
        verify_images=verify_images,
        high_bit_depth=high_bit_depth,
    )


def category_image_counts(dataset_names: Sequence[str]) -> List[int]:
    """Images per category, summed over registered datasets: their ``class_image_count``
    metadata if set (LVIS jsons), else counted from their dataset dicts."""
    return _category_counts(dataset_names, "class_image_count", per_image=True)


def category_instance_counts(dataset_names: Sequence[str]) -> List[int]:
    """Annotated instances per category, summed over registered datasets: their
    ``class_instance_count`` metadata if set (LVIS jsons), else counted from their dicts."""
    return _category_counts(dataset_names, "class_instance_count", per_image=False)


class DatasetClassCounts:
    """Per-class counts of registered datasets, read when called: what a class-balanced box
    predictor is given in the config (``class_counts``) to read its training data's class
    frequencies on its first training step, once that data is registered (as detectron2's LVIS
    recipe hands its box predictor ``get_fed_loss_cls_weights``)."""

    def __init__(self, *, dataset_names):
        """
        Args:
            dataset_names (str or list[str]): registered (training) dataset names.
        """
        self.dataset_names = dataset_names

    def __call__(self, unit: str) -> List[int]:
        """Images (``unit="images"``) or annotated instances (``"instances"``) per class."""
        assert unit in ("images", "instances"), f"unit={unit!r}: 'images' or 'instances'"
        if unit == "images":
            return category_image_counts(self.dataset_names)
        return category_instance_counts(self.dataset_names)

    def __repr__(self) -> str:
        return f"DatasetClassCounts(dataset_names={self.dataset_names!r})"


def _category_counts(dataset_names, key: str, per_image: bool) -> List[int]:
    if isinstance(dataset_names, str):
        dataset_names = [dataset_names]
    total = None
    for name in dataset_names:
        meta = MetadataCatalog.get(name)
        counts = meta.get(key, None)
        if counts is None:
            counts = [0] * len(meta.thing_classes)
            for d in DatasetCatalog.get(name):
                cats = [a["category_id"] for a in d.get("annotations", [])]
                for c in set(cats) if per_image else cats:
                    counts[c] += 1
        total = list(counts) if total is None else [a + b for a, b in zip(total, counts)]
    assert total is not None, f"{key}: needs at least one dataset name"
    return total


def records_to_lvis(
    records: Sequence[Dict],
    *,
    class_names: Sequence[str],
    frequencies: Sequence[str],
    split_folder: str,
) -> dict:
    """An LVIS-format json (as a dict) from detectron2 dataset dicts, e.g. to evaluate any
    dataset with LVIS's metrics or to build small LVIS-format test data.

    Category ``i`` of the records becomes json id ``i + 1``. Box-only objects get their box as
    polygon; ``image_count`` is counted; every category is exhaustively annotated
    (``neg_category_ids`` lists the categories absent from an image, so false positives of any
    category count). Each image's ``coco_url`` is ``split_folder/<file name>``: the images must
    be in ``<image_root>/<split_folder>/``.

    Args:
        records (list[dict]): detectron2 dicts (``file_name``, ``image_id``, ``height``,
            ``width``, ``annotations`` with ``bbox``, ``bbox_mode``, ``category_id``, and
            optionally polygon ``segmentation``).
        class_names (list[str]): name per contiguous category.
        frequencies (list[str]): ``"r"`` / ``"c"`` / ``"f"`` per category.
        split_folder (str): see above.
    """
    import numpy as np
    import pycocotools.mask as mask_util
    from detectron2.structures import BoxMode

    assert len(class_names) == len(
        frequencies
    ), f"{len(class_names)} class names but {len(frequencies)} frequencies"
    images, anns, image_sets = [], [], defaultdict(set)
    for r in records:
        present = set()
        for a in r.get("annotations", []):
            x0, y0, x1, y1 = BoxMode.convert(list(a["bbox"]), a["bbox_mode"], BoxMode.XYXY_ABS)
            segm = a.get("segmentation") or [[x0, y0, x1, y0, x1, y1, x0, y1]]
            assert isinstance(segm, list), f"{r['file_name']}: only polygon masks are supported"
            rle = mask_util.merge(mask_util.frPyObjects(segm, r["height"], r["width"]))
            cid = int(a["category_id"]) + 1
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": r["image_id"],
                    "category_id": cid,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": float(mask_util.area(rle)),
                    "segmentation": [list(map(float, p)) for p in segm],
                }
            )
            present.add(cid)
            image_sets[cid].add(r["image_id"])
        all_ids = np.arange(1, len(class_names) + 1)
        images.append(
            {
                "id": r["image_id"],
                "height": r["height"],
                "width": r["width"],
                "coco_url": f"{split_folder}/{os.path.basename(r['file_name'])}",
                "neg_category_ids": [int(c) for c in all_ids if c not in present],
                "not_exhaustive_category_ids": [],
            }
        )
    categories = [
        {"id": i + 1, "name": n, "frequency": f, "image_count": len(image_sets[i + 1])}
        for i, (n, f) in enumerate(zip(class_names, frequencies))
    ]
    return {"images": images, "annotations": anns, "categories": categories}
