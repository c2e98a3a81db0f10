"""Evaluation backends: pycocotools / lvis (the reference) or ``faster-coco-eval`` (C++).

``faster-coco-eval`` (PyPI ``faster-coco-eval``) reimplements COCO evaluation in C++ and, with
``COCOeval_faster(..., lvis_style=True)``, LVIS's (frequency groups, ``neg_category_ids`` /
``not_exhaustive_category_ids``). It is called directly here. Its ``init_as_pycocotools()``
replaces the ``pycocotools`` modules process-wide, which breaks ``import detectron2.evaluation``;
it is never called.
"""

import copy
import logging
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

__all__ = [
    "BACKENDS",
    "resolve_backend",
    "faster_coco_eval_available",
    "limit_dets_per_image",
    "faster_coco_gt",
    "evaluate_coco_faster",
    "evaluate_lvis_faster",
    "LVIS_METRICS",
]

logger = logging.getLogger(__name__)

BACKENDS = ("pycocotools", "faster_coco_eval")
LVIS_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")
# faster-coco-eval's stats_as_dict names -> detectron2's metric names
_LVIS_KEYS = dict(
    zip(
        LVIS_METRICS,
        ("AP_all", "AP_50", "AP_75", "AP_small", "AP_medium", "AP_large", "APr", "APc", "APf"),
    )
)


def faster_coco_eval_available() -> bool:
    try:
        import faster_coco_eval  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: str) -> str:
    """``backend`` if usable; "faster_coco_eval" falls back to "pycocotools" with a warning when
    the package is not importable."""
    assert backend in BACKENDS, f"evaluation backend must be one of {BACKENDS}, got {backend!r}"
    if backend == "faster_coco_eval" and not faster_coco_eval_available():
        logger.warning(
            "backend='faster_coco_eval' but faster_coco_eval is not importable "
            "(pip install faster-coco-eval); using pycocotools / lvis instead."
        )
        return "pycocotools"
    return backend


def limit_dets_per_image(results: Sequence[Dict], max_dets: int) -> List[Dict]:
    """The ``max_dets`` highest-scoring results of each image (what ``lvis.LVISResults`` keeps),
    in their original order."""
    per_image = defaultdict(list)
    for i, r in enumerate(results):
        per_image[r["image_id"]].append(i)
    keep = []
    for idx in per_image.values():
        idx.sort(key=lambda i: -results[i]["score"])
        keep.extend(idx[:max_dets])
    return [results[i] for i in sorted(keep)]


def faster_coco_gt(annotations):
    """A ``faster_coco_eval.COCO`` from a json path or a parsed dict."""
    from faster_coco_eval import COCO

    return COCO(annotations)


def _for_task(results, iou_type):
    results = copy.deepcopy(list(results))
    if iou_type == "segm":
        # as detectron2 does for pycocotools / lvis: areas from masks, not from boxes
        for r in results:
            r.pop("bbox", None)
    return results


def evaluate_coco_faster(
    coco_gt,
    results: Sequence[Dict],
    iou_type: str,
    *,
    img_ids: Optional[Sequence[int]] = None,
    max_dets_per_image: Optional[int] = None,
):
    """COCO evaluation of ``results`` (COCO result dicts, json category ids) with
    ``COCOeval_faster``; returns the evaluated object (``stats``, ``eval["precision"]``, as
    pycocotools' ``COCOeval``), or None when there are no results.

    Args:
        coco_gt: a ``faster_coco_eval.COCO`` (see :func:`faster_coco_gt`).
        iou_type (str): "bbox" or "segm".
        img_ids (list[int] or None): evaluate only these images.
        max_dets_per_image (int or None): the last maxDets value (COCO: 100).
    """
    from faster_coco_eval import COCOeval_faster

    assert iou_type in ("bbox", "segm"), f"faster_coco_eval backend: unsupported task {iou_type}"
    if len(results) == 0:
        return None
    dt = coco_gt.loadRes(_for_task(results, iou_type))
    ev = COCOeval_faster(coco_gt, dt, iou_type, print_function=logger.debug)
    if img_ids is not None:
        ev.params.imgIds = list(img_ids)
    if max_dets_per_image is not None:
        ev.params.maxDets = [1, 10, max_dets_per_image]
    ev.run()
    return ev


def evaluate_lvis_faster(
    lvis_gt,
    results: Sequence[Dict],
    iou_type: str,
    *,
    max_dets_per_image: int = 300,
    img_ids: Optional[Sequence[int]] = None,
) -> Dict[str, float]:
    """LVIS metrics (``LVIS_METRICS``, in percent, as detectron2's LVISEvaluator reports) of
    ``results`` (json category ids) with ``COCOeval_faster(..., lvis_style=True)``.

    Args:
        lvis_gt: a ``faster_coco_eval.COCO`` of the LVIS json (categories need ``frequency``).
        iou_type (str): "bbox" or "segm".
        max_dets_per_image (int): LVIS keeps the top 300 results per image (over all classes).
        img_ids (list[int] or None): evaluate only these images.
    """
    from faster_coco_eval import COCOeval_faster

    assert iou_type in ("bbox", "segm"), f"faster_coco_eval backend: unsupported task {iou_type}"
    if len(results) == 0:
        return {m: float("nan") for m in LVIS_METRICS}
    results = limit_dets_per_image(_for_task(results, iou_type), max_dets_per_image)
    dt = lvis_gt.loadRes(results)
    ev = COCOeval_faster(lvis_gt, dt, iou_type, lvis_style=True, print_function=logger.debug)
    if img_ids is not None:
        ev.params.imgIds = list(img_ids)
    ev.params.maxDets = [max_dets_per_image]
    ev.run()
    stats = ev.stats_as_dict
    return {m: float(stats[k] * 100) for m, k in _LVIS_KEYS.items()}
