"""Scoring a COCO results json against a ground-truth json, without the model: the logic
behind ``tools/evaluate.py``.

    python tools/evaluate.py --gt annotations.json --results preds/results.json

Ground truth in COCO or LVIS format (LVIS: categories carry ``frequency``; detected, or
``--format``). Results are a json list of COCO result dicts (``tools/predict.py``'s
``results.json``, or the ``coco_instances_results.json`` an evaluator writes). Results that
carry a ``file_name`` (``tools/predict.py`` writes one) are matched to the ground-truth image
whose ``file_name`` is the longest trailing part of it (``a.png`` matches
``/data/images/a.png``), so image ids need not agree.

AP counts at most ``--max-dets`` detections per image (COCO: 100, LVIS: 300): an image with more
ground-truth objects is warned about, naming it; ``--max-dets auto`` counts twice the busiest
image, as training's ``max_dets_per_image="auto"``. Bad input files are
:class:`~freezedet.utils.errors.UserError` s (one paragraph, exit status 2).
"""

import contextlib
import io
import json
import logging
import os
from typing import Dict, List, Optional, Sequence, Union

from detectron2.utils.logger import create_small_table

from ..data.coco_json import load_json_with_fields
from ..utils.errors import UserFileNotFoundError, UserKeyError, UserValueError
from .cli import check_evaluate_arguments, evaluate_argument_parser
from .backends import (  # _for_task: segm areas from masks, as detectron2 evaluates them
    LVIS_METRICS,
    _for_task,
    evaluate_coco_faster,
    evaluate_lvis_faster,
    faster_coco_gt,
    resolve_backend,
)
from .ground_truth import auto_max_dets, dense_images_message, objects_per_image

__all__ = ["COCO_METRICS", "evaluate_results_file", "match_file_names", "main"]

logger = logging.getLogger(__name__)

COCO_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
_GT_FIELDS = {
    "images": ("id",),
    "annotations": ("image_id", "bbox", "category_id"),
    "categories": ("id", "name"),
}


def _path_parts(path: str) -> tuple:
    return tuple(p for p in os.path.normpath(path).replace("\\", "/").split("/") if p)


def _image_file_name(image: dict) -> str:
    # LVIS names its images by coco_url (".../val2017/000000000139.jpg")
    return image.get("file_name") or "/".join(image.get("coco_url", "").split("/")[-2:])


def match_file_names(results: List[dict], images: List[dict]) -> List[dict]:
    """Results with ``image_id`` set from their ``file_name``: the ground-truth image whose
    ``file_name`` is the longest trailing part of the result's. Results matching no image are
    dropped with a warning; a tie between images is an error."""
    by_suffix: Dict[tuple, List[int]] = {}
    for image in images:
        parts = _path_parts(_image_file_name(image))
        for k in range(1, len(parts) + 1):
            by_suffix.setdefault(parts[-k:], []).append(image["id"])
    resolved: Dict[str, Optional[int]] = {}
    for name in {r["file_name"] for r in results}:
        parts = _path_parts(name)
        resolved[name] = None
        for k in range(len(parts), 0, -1):
            ids = by_suffix.get(parts[-k:])
            if ids:
                if len(set(ids)) > 1:
                    raise UserValueError(
                        f"result file {name} matches {len(set(ids))} ground-truth images by "
                        f"'{'/'.join(parts[-k:])}' (ids {sorted(set(ids))[:5]}); give results "
                        "with paths that tell them apart"
                    )
                resolved[name] = ids[0]
                break
    unmatched = sorted(n for n, i in resolved.items() if i is None)
    if unmatched:
        logger.warning(
            f"{len(unmatched)} predicted files are not in the ground truth and are ignored: "
            f"{unmatched[:5]}{' ...' if len(unmatched) > 5 else ''}"
        )
    return [
        dict(r, image_id=resolved[r["file_name"]])
        for r in results
        if resolved[r["file_name"]] is not None
    ]


def _load_results(path: str) -> List[dict]:
    if not os.path.isfile(path):
        raise UserFileNotFoundError(f"results file {path} does not exist")
    with open(path) as f:
        try:
            results = json.load(f)
        except json.JSONDecodeError as e:
            raise UserValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(results, list):
        raise UserValueError(f"{path}: a results file is a json list of detections, not an object")
    for i, r in enumerate(results):
        missing = [k for k in ("category_id", "score") if k not in r]
        missing += [] if ("image_id" in r or "file_name" in r) else ["image_id or file_name"]
        if missing:
            raise UserKeyError(f"{path}: result {i} lacks {missing}")
    return results


def _coco_metrics_pycocotools(gt_json, results, task, max_dets):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO(gt_json)
    ev = COCOeval(gt, gt.loadRes(_for_task(results, task)), task)
    ev.params.maxDets = [1, 10, max_dets]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its tables
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _lvis_metrics_lvis(gt_json, results, task, max_dets):
    from lvis import LVIS, LVISEval, LVISResults

    gt = LVIS(gt_json)
    ev = LVISEval(gt, LVISResults(gt, _for_task(results, task), max_dets=max_dets), task)
    ev.run()
    stats = ev.get_results()
    return {m: float(stats[m] * 100) for m in LVIS_METRICS}


def evaluate_results_file(
    gt_json: str,
    results_json: str,
    *,
    tasks: Optional[Sequence[str]] = None,
    format: str = "auto",
    backend: str = "faster_coco_eval",
    max_dets: Union[int, str, None] = None,
) -> Dict[str, Dict[str, float]]:
    """COCO (or LVIS) metrics of a results file.

    Args:
        gt_json (str): ground truth, a COCO or LVIS json.
        results_json (str): a json list of COCO result dicts.
        tasks (list[str] or None): "bbox", "segm"; None: bbox, and segm if results have masks.
        format (str): "coco", "lvis" or "auto" (LVIS if the categories have ``frequency``).
        backend (str): "faster_coco_eval" (falls back with a warning) or "pycocotools" (with
            the ``lvis`` package for LVIS).
        max_dets (int, "auto" or None): detections per image considered; None: COCO's 100,
            LVIS's 300 (with a warning naming an image that has more objects); "auto": twice
            the most objects in one image, at least 100.

    Returns:
        dict: ``{task: {metric: value in percent}}`` (COCO: AP, AP50, AP75, APs, APm, APl;
        LVIS: also APr, APc, APf).
    """
    gt = load_json_with_fields(gt_json, _GT_FIELDS, "a COCO / LVIS ground-truth json")
    results = _load_results(results_json)
    if format == "auto":
        format = "lvis" if all("frequency" in c for c in gt["categories"]) else "coco"
    if format not in ("coco", "lvis"):
        raise UserValueError(f"format={format!r}: 'coco', 'lvis' or 'auto'")
    if results and all("file_name" in r for r in results):
        results = match_file_names(results, gt["images"])
    known = {c["id"] for c in gt["categories"]}
    unknown = sorted({r["category_id"] for r in results} - known)
    if unknown:
        raise UserValueError(
            f"{results_json}: category ids {unknown[:10]} are not in {gt_json} (ids "
            f"{sorted(known)[:10]}...); were the results written for another dataset?"
        )
    if tasks is None:
        tasks = ["bbox"] + (["segm"] if results and "segmentation" in results[0] else [])
    backend = resolve_backend(backend)
    max_dets = _max_dets(gt, gt_json, max_dets, default=300 if format == "lvis" else 100)
    metrics = {}
    for task in tasks:
        if format == "lvis":
            metrics[task] = (
                evaluate_lvis_faster(faster_coco_gt(gt), results, task, max_dets_per_image=max_dets)
                if backend == "faster_coco_eval"
                else _lvis_metrics_lvis(gt_json, results, task, max_dets)
            )
            continue
        if not results:
            metrics[task] = {m: float("nan") for m in COCO_METRICS}
            continue
        ev = (
            evaluate_coco_faster(faster_coco_gt(gt), results, task, max_dets_per_image=max_dets)
            if backend == "faster_coco_eval"
            else _coco_metrics_pycocotools(gt_json, results, task, max_dets)
        )
        metrics[task] = {m: float(v * 100) for m, v in zip(COCO_METRICS, ev.stats[:6])}
    return metrics


def _max_dets(gt: dict, gt_json: str, max_dets: Union[int, str, None], *, default: int) -> int:
    """The detections per image to count: ``max_dets``, ``default`` for None (warning when an
    image has more objects), or :func:`auto_max_dets` of the busiest image for "auto"."""
    counts = objects_per_image(gt["images"], gt["annotations"])
    if max_dets == "auto":
        max_dets = auto_max_dets(max(counts.values(), default=0))
        logger.info(f"--max-dets auto: {max_dets} detections per image")
        return max_dets
    try:
        max_dets = int(max_dets or default)
    except ValueError:
        raise UserValueError(f"--max-dets {max_dets!r}: a number or 'auto'") from None
    message = dense_images_message(
        counts,
        {im["id"]: _image_file_name(im) for im in gt["images"]},
        max_dets,
        source=gt_json,
        fix="Pass --max-dets auto (or a number)",
    )
    if message:
        logger.warning(message)
    return max_dets


def main(argv=None) -> int:
    """``tools/evaluate.py``; returns the exit status. Bad input files raise
    :class:`~freezedet.utils.errors.UserError` (the tool prints it as one paragraph, status 2:
    :func:`freezedet.utils.errors.run_tool`)."""
    parser = evaluate_argument_parser(__doc__)
    args = parser.parse_args(argv)
    check_evaluate_arguments(parser, args)
    if args.run:
        from ..engine.train_net import evaluate_run  # the engine imports this package

        evaluate_run(
            args.run,
            weights=args.weights,
            output_dir=args.output_dir,
            device=args.device,
            opts=args.opts,
        )
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    metrics = evaluate_results_file(
        args.gt,
        args.results,
        tasks=args.tasks,
        format=args.format,
        backend=args.backend,
        max_dets=args.max_dets,
    )
    for task, values in metrics.items():
        print(f"{task}:\n{create_small_table(values)}")
    if args.output:
        with open(args.output, "w") as f:
            json.dump(metrics, f, indent=2)
    return 0
