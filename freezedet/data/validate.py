"""Dataset dicts checked before training: bad input becomes a clear message, not a crash deep in
a data-loader worker hours later.

:func:`checked_dataset_dicts` is a drop-in for detectron2's ``get_detection_dataset_dicts`` in
configs (same ``names`` / ``filter_empty`` arguments):

- an image file that is missing or (with ``verify_images``) cannot be decoded is an error naming the file and the
  dataset, or, with ``skip_bad_images=True``, a record dropped and counted in one warning;
- boxes are clipped to the image; boxes that are degenerate (no area, NaN) or entirely outside
  it are dropped, with a count per dataset in the log;
- a dataset left with zero usable images is an error that says why.
"""

import logging
import math
import os
from collections import Counter
from typing import List, Sequence, Union

from PIL import Image

from detectron2.data import MetadataCatalog, get_detection_dataset_dicts
from detectron2.structures import BoxMode

__all__ = ["check_records", "checked_dataset_dicts", "forget_stale_coco_conversion"]

logger = logging.getLogger(__name__)


def _image_problem(path: str, verify: bool):
    if not os.path.isfile(path):
        return "does not exist"
    if not verify:
        return None
    try:
        with Image.open(path) as im:
            im.verify()  # reads the whole file, checks its structure
    except Exception as e:  # PIL raises many types for a corrupt file
        return f"cannot be decoded ({type(e).__name__}: {e})"
    return None


def _fix_boxes(record: dict, counts: Counter) -> dict:
    anns = record.get("annotations")
    if anns is None:
        return record
    w, h = record.get("width"), record.get("height")
    kept = []
    for ann in anns:
        box = BoxMode.convert(list(ann["bbox"]), ann["bbox_mode"], BoxMode.XYXY_ABS)
        if any(not math.isfinite(v) for v in box) or box[2] <= box[0] or box[3] <= box[1]:
            counts["degenerate boxes dropped"] += 1
            continue
        if w is not None and h is not None:
            clipped = [
                min(max(box[0], 0), w),
                min(max(box[1], 0), h),
                min(max(box[2], 0), w),
                min(max(box[3], 0), h),
            ]
            if clipped[2] - clipped[0] < 1 or clipped[3] - clipped[1] < 1:
                counts["boxes outside the image dropped"] += 1
                continue
            if clipped != box:
                counts["boxes clipped to the image"] += 1
                box = clipped
        kept.append(dict(ann, bbox=box, bbox_mode=BoxMode.XYXY_ABS))
    return dict(record, annotations=kept)


def check_records(
    records: List[dict], *, name: str, skip_bad_images: bool = False, verify_images: bool = True
) -> List[dict]:
    """Check and clean ``records`` of dataset ``name`` (see module docstring)."""
    counts = Counter()
    out = []
    for r in records:
        problem = _image_problem(r["file_name"], verify_images)
        if problem is not None:
            if not skip_bad_images:
                raise FileNotFoundError(
                    f"dataset {name!r}: image {r['file_name']} {problem}. Fix or remove it, "
                    "or skip such records with skip_bad_images=True "
                    f"(e.g. dataloader.train.dataset.skip_bad_images=True)."
                )
            counts["unreadable images skipped"] += 1
            continue
        out.append(_fix_boxes(r, counts))
    if counts:
        logger.warning(f"dataset {name!r}: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    if not out:
        raise ValueError(
            f"dataset {name!r} has no usable image ({len(records)} records, "
            f"{dict(counts) or 'none readable'}); check its image root and annotations."
        )
    return out


def _missing_json_file(name: str):
    """Dataset ``name``'s registered ``json_file`` if it is a local path that does not exist."""
    json_file = MetadataCatalog.get(name).get("json_file", None)
    if json_file and "://" not in json_file and not os.path.isfile(json_file):
        return json_file
    return None


def forget_stale_coco_conversion(name: str) -> bool:
    """Drop ``json_file`` from dataset ``name``'s metadata when it is detectron2's COCO
    conversion cache and that file is gone; return whether it did.

    detectron2's ``COCOEvaluator`` converts a dataset registered without a COCO json (VOC XML,
    a Python function) to ``<output_dir>/<name>_coco_format.json`` and records that path in the
    process-wide ``MetadataCatalog``. Once that output directory is deleted, a later evaluator
    (or training run) in the same process would point at the missing file; forgetting the path
    makes the next ``COCOEvaluator`` convert again into its own output directory.
    """
    meta = MetadataCatalog.get(name)
    json_file = _missing_json_file(name)
    if json_file and os.path.basename(json_file) == f"{name}_coco_format.json":
        logger.info(f"dataset {name!r}: COCO conversion cache {json_file} is gone; forgetting it")
        delattr(meta, "json_file")
        return True
    return False


def _check_annotation_files(names: Sequence[str]):
    """detectron2's built-in datasets (coco_2017_train, lvis_v1_val, ...) are registered with
    paths below $DETECTRON2_DATASETS whether or not the files exist: say so before loading."""
    for name in names:
        if forget_stale_coco_conversion(name):
            continue  # records come from the dataset's own loader, not from the cache
        json_file = _missing_json_file(name)
        if json_file:
            root = os.getenv("DETECTRON2_DATASETS", "datasets")
            raise FileNotFoundError(
                f"dataset {name!r}: annotation file {json_file} does not exist. detectron2's "
                f"built-in datasets are read from $DETECTRON2_DATASETS (now {root!r}; see "
                "detectron2's docs, 'Use Builtin Datasets', for the expected layout): download "
                "the data there, set DETECTRON2_DATASETS, or register your copy under another "
                "name (freezedet.data.coco_json / freezedet.data.lvis)."
            )


def checked_dataset_dicts(
    names: Union[str, Sequence[str]],
    filter_empty: bool = True,
    skip_bad_images: bool = False,
    verify_images: bool = True,
    **kwargs,
):
    """``get_detection_dataset_dicts`` followed by :func:`check_records`.

    Args:
        names (str or list[str]): registered dataset names.
        filter_empty (bool): drop images without annotations (after box cleaning).
        skip_bad_images (bool): drop unreadable images with a counted warning instead of failing.
        verify_images (bool): decode-check every image once (existence is always checked);
            turn off for very large datasets (COCO) where reading every file takes minutes.
        kwargs: other arguments of ``get_detection_dataset_dicts``.
    """
    label = names if isinstance(names, str) else ",".join(names)
    _check_annotation_files([names] if isinstance(names, str) else names)
    records = get_detection_dataset_dicts(names, filter_empty=False, **kwargs)
    records = check_records(
        records, name=label, skip_bad_images=skip_bad_images, verify_images=verify_images
    )
    if filter_empty:
        records = [r for r in records if r.get("annotations")]
        if not records:
            raise ValueError(f"dataset {label!r} has no image with a usable box")
    return records
