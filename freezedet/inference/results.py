"""Predictions as COCO results (json) and as pictures (detectron2's ``Visualizer``)."""

from typing import List, Optional

import numpy as np
import pycocotools.mask as mask_util

from detectron2.structures import BoxMode, Instances
from detectron2.utils.visualizer import Visualizer, _create_text_labels

from .masks import CroppedMasks

__all__ = ["instances_to_results", "draw_instances"]


def _dataset_ids(metadata, classes: List[int]) -> List[int]:
    """Contiguous class indices -> the dataset's own category ids (as COCOEvaluator writes
    them): through ``thing_dataset_id_to_contiguous_id`` where the dataset has one."""
    id_map = metadata.get("thing_dataset_id_to_contiguous_id", None) if metadata else None
    if not id_map:
        return list(classes)
    reverse = {v: k for k, v in id_map.items()}
    missing = sorted(set(classes) - set(reverse))
    assert not missing, f"predicted classes {missing} are not in {metadata.name}'s id map {reverse}"
    return [reverse[c] for c in classes]


def _mask_rles(masks) -> List[dict]:
    if isinstance(masks, CroppedMasks):
        return masks.to_rle()
    rles = []
    for m in masks:
        rle = mask_util.encode(np.asfortranarray(np.asarray(m, dtype=np.uint8)))
        rle["counts"] = rle["counts"].decode("utf-8")
        rles.append(rle)
    return rles


def instances_to_results(
    instances: Instances, *, image_id: int, file_name: Optional[str] = None, metadata=None
) -> List[dict]:
    """COCO result dicts of one image's predictions.

    Args:
        instances (Instances): predictions (``pred_boxes``, ``scores``, ``pred_classes``,
            optionally ``pred_masks``: bitmasks or :class:`CroppedMasks`).
        image_id (int): the image's id.
        file_name (str or None): also stored in each result, so that results can be matched to
            a ground-truth json by file name (``tools/evaluate.py``).
        metadata (Metadata or None): maps class indices back to the dataset's category ids.

    Returns:
        list[dict]: ``image_id``, (``file_name``), ``category_id``, ``bbox`` (XYWH), ``score``
        and, for mask models, ``segmentation`` (RLE, ``counts`` as str).
    """
    if len(instances) == 0:
        return []
    boxes = BoxMode.convert(
        instances.pred_boxes.tensor.numpy(), BoxMode.XYXY_ABS, BoxMode.XYWH_ABS
    ).tolist()
    scores = instances.scores.tolist()
    categories = _dataset_ids(metadata, instances.pred_classes.tolist())
    rles = _mask_rles(instances.pred_masks) if instances.has("pred_masks") else None
    results = []
    for k in range(len(instances)):
        r = {"image_id": image_id, "category_id": categories[k], "bbox": boxes[k]}
        r["score"] = scores[k]
        if file_name is not None:
            r["file_name"] = file_name
        if rles is not None:
            r["segmentation"] = rles[k]
        results.append(r)
    return results


def draw_instances(image_rgb: np.ndarray, instances: Instances, metadata=None) -> np.ndarray:
    """The image with boxes, masks and "<class> <score>%" labels drawn by detectron2's
    ``Visualizer``; returns an RGB array of the image's size."""
    vis = Visualizer(image_rgb, metadata)
    if not (instances.has("pred_masks") and isinstance(instances.pred_masks, CroppedMasks)):
        return vis.draw_instance_predictions(instances).get_image()
    # the Visualizer would decode every mask at full size; polygons of the crops suffice
    classes = instances.pred_classes.tolist()
    names = metadata.get("thing_classes", None) if metadata else None
    labels = _create_text_labels(classes, instances.scores, names)
    masks = instances.pred_masks.polygons()
    keep = [i for i, m in enumerate(masks) if m]  # a mask that vanished has no polygon
    out = vis.overlay_instances(
        boxes=instances.pred_boxes.tensor[keep].numpy(),
        labels=[labels[i] for i in keep],
        masks=[masks[i] for i in keep],
        alpha=0.5,
    )
    return out.get_image()
