"""COCO evaluation that works on both detectron2 routes, with a choice of backend."""

import contextlib
import io
import itertools
import json
import os

import numpy as np

from detectron2.evaluation import COCOEvaluator as _D2COCOEvaluator
from detectron2.utils.file_io import PathManager

from ..compat import HAS_COMPILED_OPS
from ..data.validate import bad_ground_truth, forget_stale_coco_conversion
from ..utils.errors import UserValueError
from .backends import evaluate_coco_faster, faster_coco_gt, resolve_backend
from .box_pr import box_precision_recall, boxes_from_coco_results
from .ground_truth import (
    auto_max_dets,
    dense_images_message,
    left_out_ids,
    left_out_message,
    objects_per_image,
)

__all__ = ["COCOEvaluator", "auto_max_dets"]


class COCOEvaluator(_D2COCOEvaluator):
    """detectron2's ``COCOEvaluator``; its C++ fast path is used only where it was compiled, and
    ``backend="faster_coco_eval"`` computes bbox / segm metrics with ``faster-coco-eval``.

    The pure-Python detectron2 install has no ``detectron2._C.COCOevalEvaluateImages``; there
    pycocotools computes the same numbers.

    Ground truth no detection can ever match (a box of width or height <= 0, or entirely outside
    its image: :func:`~freezedet.data.validate.bad_ground_truth`) is an error naming the
    annotation file and ids: counting it would lower AP silently. An image with more objects than
    ``max_dets_per_image`` is warned about, naming it (AP is capped there); ``"auto"`` avoids
    that. Ground-truth images that got no prediction (skipped from the test set as unreadable)
    are left out of AP, with a warning counting their images and objects (``left_out``).
    """

    def __init__(
        self,
        dataset_name,
        tasks=None,
        distributed=True,
        output_dir=None,
        *,
        max_dets_per_image=None,
        use_fast_impl=None,
        backend="pycocotools",
        box_pr=None,
        **kwargs,
    ):
        """
        Args:
            dataset_name, tasks, distributed, output_dir: as detectron2's.
            max_dets_per_image (int, "auto" or None): detections per image COCO AP counts
                (None: COCO's 100; "auto": :func:`auto_max_dets` of the ground truth).
            use_fast_impl (bool or None): None: detectron2's C++ evaluator where compiled
                (pycocotools backend).
            backend (str): "pycocotools" (detectron2's evaluation) or "faster_coco_eval" (same
                metrics, C++; keypoints still use pycocotools). Falls back to pycocotools with
                a warning when faster_coco_eval is not installed.
            box_pr (dict or None): also report DeepForest's box precision / recall
                (:mod:`freezedet.evaluation.box_pr`) as ``bbox/P@<iou>`` and ``bbox/R@<iou>``,
                e.g. ``dict(iou_threshold=0.4, score_threshold=0.1)``; None: not reported.
        """
        if use_fast_impl is None:
            use_fast_impl = HAS_COMPILED_OPS
        elif use_fast_impl and not HAS_COMPILED_OPS:
            raise ValueError(
                "use_fast_impl=True needs detectron2's compiled ops, which this install lacks; "
                "leave it None (auto) or build detectron2 from source."
            )
        self.backend = resolve_backend(backend)
        self._box_pr = dict(box_pr) if box_pr else None
        self._faster_gt = None
        self.left_out = {"images": 0, "objects": 0}
        forget_stale_coco_conversion(dataset_name)  # converted again below, into output_dir
        auto = max_dets_per_image == "auto"
        super().__init__(
            dataset_name,
            tasks,
            distributed,
            output_dir,
            max_dets_per_image=None if auto else max_dets_per_image,
            use_fast_impl=use_fast_impl,
            **kwargs,
        )
        if self._do_evaluation:
            self._check_ground_truth(auto)

    @property
    def max_dets_per_image(self) -> int:
        """Detections per image COCO AP counts (after resolving ``"auto"``)."""
        return self._max_dets_per_image[-1]

    def _check_ground_truth(self, auto: bool):
        source = self._metadata.get("json_file", self._metadata.name)
        bad = bad_ground_truth(self._coco_api.dataset)
        if bad:
            shown = ", ".join(
                f"id {b['id']} (image {b['image_id']}, bbox {b['bbox']}: {b['problem']})"
                for b in bad[:5]
            )
            raise UserValueError(
                f"{source}: {len(bad)} ground-truth annotation(s) no detection can ever match: "
                f"{shown}{' ...' if len(bad) > 5 else ''}. COCO AP would count them as missed "
                "objects and be silently lower. Fix or remove them in the annotation file "
                "(COCO bbox is [x, y, width, height], width and height > 0)."
            )
        api = self._coco_api
        self._objects = objects_per_image(api.dataset.get("images", []), api.anns.values())
        most = max(self._objects.values(), default=0)
        if auto:
            self._max_dets_per_image = [1, 10, auto_max_dets(most)]
            self._logger.info(
                f"max_dets_per_image=auto: {self._max_dets_per_image[-1]} detections per image "
                f"(the busiest image of {self._metadata.name} has {most} objects)"
            )
            return
        message = dense_images_message(
            self._objects,
            {i: im.get("file_name") for i, im in api.imgs.items()},
            self._max_dets_per_image[-1],
            source=self._metadata.name,
            fix="Set dataloader.evaluator.max_dets_per_image=auto (or a number)",
        )
        if message:
            self._logger.warning(message)

    def _predicted_image_ids(self, predictions):
        """The ground-truth image ids that got a prediction (detectron2's evaluator records one
        for every image the loader delivered, detections or not), or None when all did; the
        others are left out of AP with a warning (their objects would count as missed)."""
        api = self._coco_api
        gt_ids = api.getImgIds()
        seen = {p["image_id"] for p in predictions}
        missing = left_out_ids(gt_ids, seen)
        if not missing:
            return None
        self.left_out = {
            "images": len(missing),
            "objects": sum(self._objects.get(i, 0) for i in missing),
        }
        self._logger.warning(
            left_out_message(
                gt_ids,
                seen,
                self._objects,
                {i: im.get("file_name") for i, im in api.imgs.items()},
                source=self._metadata.name,
            )
        )
        return [i for i in gt_ids if i in seen]

    def _unmapped_results(self, predictions):
        results = list(itertools.chain(*[x["instances"] for x in predictions]))
        id_map = self._metadata.get("thing_dataset_id_to_contiguous_id", None)
        if id_map is not None:
            reverse = {v: k for k, v in id_map.items()}
            for r in results:
                assert r["category_id"] in reverse, (
                    f"a prediction has class {r['category_id']}; dataset "
                    f"{self._metadata.name} has {len(reverse)} classes"
                )
                r["category_id"] = reverse[r["category_id"]]
        return results

    def _eval_predictions(self, predictions, img_ids=None):
        if img_ids is None and self._do_evaluation:
            img_ids = self._predicted_image_ids(predictions)
        if self.backend == "pycocotools":
            # pycocotools prints ~20 lines of progress and its own copy of the table that
            # detectron2 logs next: kept in the log at DEBUG level, out of the console
            with contextlib.redirect_stdout(io.StringIO()) as printed:
                super()._eval_predictions(predictions, img_ids=img_ids)
            self._logger.debug("pycocotools:\n" + printed.getvalue())
        else:
            self._eval_predictions_faster(predictions, img_ids)
        if self._box_pr and self._do_evaluation and "bbox" in self._results:
            self._results["bbox"].update(self._box_precision_recall(predictions, img_ids))

    def _box_precision_recall(self, predictions, img_ids):
        api = self._coco_api
        ids = api.getImgIds() if img_ids is None else list(img_ids)
        gt = {}
        for i in ids:
            xywh = [a["bbox"] for a in api.imgToAnns[i] if not a.get("iscrowd", 0)]
            gt[i] = np.asarray([[x, y, x + w, y + h] for x, y, w, h in xywh]).reshape(-1, 4)
        boxes, scores = boxes_from_coco_results(
            itertools.chain(*[p["instances"] for p in predictions])
        )
        pr = box_precision_recall(gt, boxes, scores, **self._box_pr)
        iou = self._box_pr.get("iou_threshold", 0.4)
        self._logger.info(
            f"DeepForest box precision / recall at IoU {iou}: {pr['precision']:.1f} / "
            f"{pr['recall']:.1f} over {pr['images']} images"
        )
        return {f"P@{iou}": pr["precision"], f"R@{iou}": pr["recall"]}

    def _eval_predictions_faster(self, predictions, img_ids):
        results = self._unmapped_results(predictions)
        tasks = self._tasks or self._tasks_from_predictions(results)
        if self._output_dir:
            path = os.path.join(self._output_dir, "coco_instances_results.json")
            with PathManager.open(path, "w") as f:
                f.write(json.dumps(results))
        if not self._do_evaluation:
            self._logger.info("Annotations are not available for evaluation.")
            return
        if any(t not in ("bbox", "segm") for t in tasks):
            self._logger.warning(f"tasks {tasks}: faster_coco_eval backend does bbox / segm only")
            return super()._eval_predictions(predictions, img_ids=img_ids)
        if self._faster_gt is None:
            self._faster_gt = faster_coco_gt(self._coco_api.dataset)
        self._logger.info("Evaluating predictions with faster-coco-eval ...")
        max_dets = self._max_dets_per_image
        for task in sorted(tasks):
            coco_eval = evaluate_coco_faster(
                self._faster_gt,
                results,
                task,
                img_ids=img_ids,
                max_dets_per_image=None if max_dets == [1, 10, 100] else max_dets[-1],
            )
            self._results[task] = self._derive_coco_results(
                coco_eval, task, class_names=self._metadata.get("thing_classes")
            )
