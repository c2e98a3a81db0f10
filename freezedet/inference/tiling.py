"""Sliding-window prediction on images larger than the ones a detector was trained on.

An image is covered by overlapping tiles (``tile_size`` px, neighbours overlapping by
``overlap`` of a tile, the last row and column aligned to the image's edge, as
:mod:`freezedet.data.deepforest` tiles its training data). Each tile is one ordinary
evaluation image for the detector; its detections are shifted into image coordinates and
merged across tile borders in two steps:

1. **Tile cores.** The overlap between two neighbours is split at its middle; a tile keeps only
   detections whose box centre lies in its *core* (the tile minus the halves it shares). The
   cores partition the image, so an object no larger than the overlap is kept from exactly one
   tile: the one that sees it whole. This removes the cut-off boxes a tile predicts for objects
   crossing its edge, which overlap the whole object's box too little for NMS to remove.
2. **NMS or weighted box fusion** (class-aware, IoU ``merge_iou``) over all kept detections,
   for objects larger than the overlap that several tiles report. Box fusion ("Weighted boxes
   fusion", Solovyev et al., 2021) clusters boxes greedily by score and replaces each cluster
   by the score-weighted mean box with the cluster's highest score and its best box's mask.

Only one batch of tiles is held at a time; detections are kept compactly (boxes, scores,
classes, masks cropped to their extent: :class:`~freezedet.inference.masks.CroppedMasks`).
"""

import math
from typing import List, Tuple

import numpy as np
import torch
from torchvision.ops import batched_nms, box_iou

from detectron2.structures import Boxes, Instances

from .cli import MERGE_METHODS
from .masks import CroppedMasks

__all__ = [
    "MERGE_METHODS",
    "tile_origins",
    "tile_grid",
    "tile_cores",
    "image_tiles",
    "in_core",
    "shift_instances",
    "merge_detections",
    "fuse_boxes",
]


def tile_origins(length: int, tile_size: int, overlap: float) -> List[int]:
    """Origins of the tiles covering [0, length): stride ``tile_size * (1 - overlap)``, the
    last tile aligned to ``length``; one tile at 0 when ``length <= tile_size``."""
    assert tile_size > 0, f"tile_size={tile_size} must be positive"
    assert 0 <= overlap < 1, f"overlap={overlap} must be in [0, 1)"
    if length <= tile_size:
        return [0]
    stride = max(1, int(round(tile_size * (1 - overlap))))
    origins = list(range(0, length - tile_size + 1, stride))
    if origins[-1] + tile_size < length:
        origins.append(length - tile_size)
    return origins


def _cores_1d(origins: List[int], tile_size: int, length: int) -> List[Tuple[float, float]]:
    """[start, end) of each tile's core along one axis: overlaps split at their middle; the
    outer tiles' cores extend to infinity, so the cores partition the whole axis."""
    size = min(tile_size, length)
    cores = []
    for i, o in enumerate(origins):
        start = -math.inf if i == 0 else (o + origins[i - 1] + size) / 2
        end = math.inf if i == len(origins) - 1 else (origins[i + 1] + o + size) / 2
        cores.append((start, end))
    return cores


def tile_grid(height: int, width: int, tile_size: int, overlap: float) -> List[Tuple[int, ...]]:
    """Tiles of an image in raster order, each ``(x0, y0, x1, y1)``."""
    ys, xs = tile_origins(height, tile_size, overlap), tile_origins(width, tile_size, overlap)
    th, tw = min(tile_size, height), min(tile_size, width)
    return [(x, y, x + tw, y + th) for y in ys for x in xs]


def tile_cores(height: int, width: int, tile_size: int, overlap: float) -> List[Tuple[float, ...]]:
    """The core ``(x0, y0, x1, y1)`` of each tile of :func:`tile_grid`, in the same order."""
    ys, xs = tile_origins(height, tile_size, overlap), tile_origins(width, tile_size, overlap)
    cy, cx = _cores_1d(ys, tile_size, height), _cores_1d(xs, tile_size, width)
    return [(x0, y0, x1, y1) for (y0, y1) in cy for (x0, x1) in cx]


def in_core(instances: Instances, core: Tuple[float, ...]) -> torch.Tensor:
    """Bool mask of the detections whose box centre lies in ``core`` (half-open)."""
    centers = instances.pred_boxes.get_centers()
    x0, y0, x1, y1 = core
    cx, cy = centers[:, 0], centers[:, 1]
    return (cx >= x0) & (cx < x1) & (cy >= y0) & (cy < y1)


def shift_instances(instances: Instances, origin, image_size) -> Instances:
    """A tile's detections (boxes and bitmasks in tile coordinates) in image coordinates; masks
    become :class:`CroppedMasks`."""
    x, y = origin
    out = Instances(tuple(image_size))
    boxes = instances.pred_boxes.tensor.clone()
    boxes[:, 0::2] += x
    boxes[:, 1::2] += y
    out.pred_boxes = Boxes(boxes)
    out.scores = instances.scores
    out.pred_classes = instances.pred_classes
    if instances.has("pred_masks"):
        out.pred_masks = CroppedMasks.from_bitmasks(instances.pred_masks, (x, y), image_size)
    return out


def fuse_boxes(instances: Instances, iou_threshold: float, score_divisor: float = None):
    """Weighted box fusion: visit boxes by decreasing score; a box joins the cluster of its class
    whose fused box (the score-weighted mean of its members) it overlaps by more than
    ``iou_threshold``, or starts a new one.

    Args:
        instances (Instances): detections with pred_boxes, scores, pred_classes.
        iou_threshold (float): the overlap above which a box joins a cluster.
        score_divisor (float or None): None keeps each cluster's highest score (tiles: one
            object seen whole by one tile); a number scores a cluster by the sum of its members'
            scores divided by it, capped at 1 (test-time views: the number of views, so the
            score measures how many views agree).

    Returns:
        Instances: one detection per cluster (its best member's other fields), sorted by
        decreasing score.
    """
    order = torch.argsort(instances.scores, descending=True)
    instances = instances[order]
    boxes, classes = instances.pred_boxes.tensor, instances.pred_classes
    scores = instances.scores.to(boxes.dtype)
    weight = scores.clamp(min=1e-6)  # a box of score 0 still counts in its cluster's mean
    n = len(boxes)
    heads = torch.zeros(n, dtype=torch.long)  # each cluster's best (first) box
    sums = torch.zeros((n, 4), dtype=boxes.dtype)  # score-weighted box sums, cluster by cluster
    weights = torch.zeros(n, dtype=boxes.dtype)
    totals = torch.zeros(n, dtype=boxes.dtype)  # sums of the members' scores
    count = 0
    for i in range(n):
        if count:
            iou = box_iou(boxes[i : i + 1], sums[:count] / weights[:count, None])[0]
            iou[classes[heads[:count]] != classes[i]] = -1
            best = int(torch.argmax(iou))
            if iou[best] > iou_threshold:
                sums[best] += weight[i] * boxes[i]
                weights[best] += weight[i]
                totals[best] += scores[i]
                continue
        heads[count] = i  # a new cluster
        sums[count] = weight[i] * boxes[i]
        weights[count] = weight[i]
        totals[count] = scores[i]
        count += 1
    merged = instances[heads[:count]]
    merged.pred_boxes = Boxes(sums[:count] / weights[:count, None])
    if score_divisor is not None:
        fused = (totals[:count] / score_divisor).clamp(max=1.0)
        merged.scores = fused.to(instances.scores.dtype)
        merged = merged[torch.argsort(merged.scores, descending=True)]
    return merged


def merge_detections(instances: Instances, method: str = "nms", iou_threshold: float = 0.5):
    """Merge duplicates among detections gathered from several tiles, class by class.

    Args:
        instances (Instances): detections in image coordinates.
        method (str): "nms" (keep the best box of each overlapping group) or "wbf" (weighted
            box fusion, see module docstring).
        iou_threshold (float): boxes overlapping more than this are duplicates.

    Returns:
        Instances: the merged detections, sorted by decreasing score.
    """
    assert method in MERGE_METHODS, f"merge method {method!r} is not one of {MERGE_METHODS}"
    if len(instances) == 0:
        return instances
    if method == "wbf":
        return fuse_boxes(instances, iou_threshold)
    keep = batched_nms(
        instances.pred_boxes.tensor, instances.scores, instances.pred_classes, iou_threshold
    )
    return instances[keep]  # batched_nms returns indices by decreasing score


def image_tiles(image: np.ndarray, tile_size: int, overlap: float):
    """``(tile array, (x0, y0), core)`` of each tile of an HWC image, in raster order, each
    array a view (no copy)."""
    height, width = image.shape[:2]
    grid = tile_grid(height, width, tile_size, overlap)
    cores = tile_cores(height, width, tile_size, overlap)
    for (x0, y0, x1, y1), core in zip(grid, cores):
        yield image[y0:y1, x0:x1], (x0, y0), core
