"""DeepForest's box precision and recall (Weinstein et al., "DeepForest", MEE 2020).

Tree crowns have no agreed outline, so DeepForest scores boxes at IoU 0.4, not by COCO AP. Its
``evaluate_boxes`` (``deepforest/evaluate.py`` + ``IoU.py``, read to learn the definition):

1. keep predictions with score >= ``score_thresh`` (DeepForest's config: 0.1);
2. per image, match ground truth and predictions one-to-one by the assignment that maximises the
   total *intersection area* (Hungarian algorithm), then a matched pair is a true positive when
   its IoU > ``iou_threshold`` (0.4);
3. per image: recall = TP / #ground truth, precision = TP / #predictions; an image with ground
   truth but no prediction counts recall 0 and no precision; images without ground truth are
   not scored;
4. box_recall / box_precision are the means over images.

DeepForest also applies its own NMS (IoU 0.05) inside its model; here the detector's own
post-processing is scored as is.
"""

from typing import Dict, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["box_precision_recall", "boxes_from_coco_results"]


def _intersections_and_ious(gt: np.ndarray, dt: np.ndarray):
    """(G, D) intersection areas and IoUs of XYXY boxes."""
    lt = np.maximum(gt[:, None, :2], dt[None, :, :2])
    rb = np.minimum(gt[:, None, 2:], dt[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_g = np.prod(gt[:, 2:] - gt[:, :2], axis=1)
    area_d = np.prod(dt[:, 2:] - dt[:, :2], axis=1)
    union = area_g[:, None] + area_d[None, :] - inter
    return inter, np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def box_precision_recall(
    gt_boxes: Dict[int, np.ndarray],
    dt_boxes: Dict[int, np.ndarray],
    dt_scores: Dict[int, np.ndarray],
    *,
    iou_threshold: float = 0.4,
    score_threshold: float = 0.1,
) -> Dict[str, float]:
    """DeepForest's box precision / recall (module docstring), class-agnostic, in percent.

    Args:
        gt_boxes (dict[int, ndarray]): image id -> (G, 4) XYXY ground-truth boxes.
        dt_boxes (dict[int, ndarray]): image id -> (D, 4) XYXY predicted boxes.
        dt_scores (dict[int, ndarray]): image id -> (D,) scores of ``dt_boxes``.
        iou_threshold (float): a matched pair is a true positive when its IoU is above this.
        score_threshold (float): predictions below this score are dropped first.

    Returns:
        dict: ``{"precision": ..., "recall": ..., "images": n}``; precision is NaN when no
        image with ground truth has a prediction.
    """
    recalls, precisions = [], []
    for image_id, gt in gt_boxes.items():
        gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
        if len(gt) == 0:
            continue
        dt = np.asarray(dt_boxes.get(image_id, np.zeros((0, 4))), dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(dt_scores.get(image_id, np.zeros(len(dt))), dtype=np.float64)
        assert len(scores) == len(dt), f"image {image_id}: {len(scores)} scores, {len(dt)} boxes"
        dt = dt[scores >= score_threshold]
        if len(dt) == 0:
            recalls.append(0.0)
            continue
        inter, iou = _intersections_and_ious(gt, dt)
        rows, cols = linear_sum_assignment(inter, maximize=True)
        tp = int(np.sum(iou[rows, cols] > iou_threshold))
        recalls.append(tp / len(gt))
        precisions.append(tp / len(dt))
    return {
        "precision": 100 * float(np.mean(precisions)) if precisions else float("nan"),
        "recall": 100 * float(np.mean(recalls)) if recalls else float("nan"),
        "images": len(recalls),
    }


def boxes_from_coco_results(results: Sequence[dict]):
    """COCO result dicts (``bbox`` XYWH) -> per-image XYXY boxes and scores."""
    boxes, scores = {}, {}
    for r in results:
        x, y, w, h = r["bbox"]
        boxes.setdefault(r["image_id"], []).append([x, y, x + w, y + h])
        scores.setdefault(r["image_id"], []).append(r["score"])
    return (
        {k: np.asarray(v) for k, v in boxes.items()},
        {k: np.asarray(v) for k, v in scores.items()},
    )
