"""LVIS evaluation (AP, APr / APc / APf for bbox and segm) with a choice of backend."""

import itertools
import json
import os

from detectron2.evaluation import LVISEvaluator as _D2LVISEvaluator
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import create_small_table

from ..utils.errors import UserValueError
from .backends import evaluate_lvis_faster, faster_coco_gt, resolve_backend
from .ground_truth import dense_images_message, left_out_ids, left_out_message, objects_per_image

__all__ = ["LVISEvaluator"]


class LVISEvaluator(_D2LVISEvaluator):
    """detectron2's ``LVISEvaluator`` (the ``lvis`` package), or with
    ``backend="faster_coco_eval"`` the same metrics from ``COCOeval_faster(lvis_style=True)``.

    The dataset's metadata needs ``json_file`` (an LVIS-format json: categories with
    ``frequency``); datasets registered by :mod:`freezedet.data.lvis` have it.

    An image with more objects than ``max_dets_per_image`` is warned about, naming it.
    Ground-truth images that got no prediction (skipped from the test set as unreadable) are
    left out of AP with a warning (faster_coco_eval backend); the ``lvis`` package cannot leave
    images out, so there that is an error.
    """

    def __init__(
        self,
        dataset_name,
        tasks=None,
        distributed=True,
        output_dir=None,
        *,
        max_dets_per_image=None,
        backend="pycocotools",
    ):
        """
        Args:
            dataset_name, tasks, distributed, output_dir, max_dets_per_image: as detectron2's
                (``max_dets_per_image`` None: LVIS's 300).
            backend (str): "pycocotools" (the ``lvis`` package, as detectron2) or
                "faster_coco_eval". Falls back to the former with a warning when
                faster_coco_eval is not installed.
        """
        self.backend = resolve_backend(backend)
        self._faster_gt = None
        super().__init__(
            dataset_name, tasks, distributed, output_dir, max_dets_per_image=max_dets_per_image
        )
        api = self._lvis_api
        self._objects = objects_per_image(api.dataset["images"], api.anns.values())
        self._file_names = {
            i: im.get("file_name") or im.get("coco_url", "").rsplit("/", 1)[-1]
            for i, im in api.imgs.items()
        }
        message = dense_images_message(
            self._objects,
            self._file_names,
            self._max_dets_per_image or 300,
            source=self._metadata.name,
            fix="Set dataloader.evaluator.max_dets_per_image to a larger number",
        )
        if message:
            self._logger.warning(message)

    def _predicted_image_ids(self, predictions):
        """Ground-truth image ids that got a prediction, or None when all did (see the class)."""
        gt_ids = self._lvis_api.get_img_ids()
        seen = {p["image_id"] for p in predictions}
        if not left_out_ids(gt_ids, seen):
            return None
        stop = self.backend == "pycocotools"
        message = left_out_message(
            gt_ids, seen, self._objects, self._file_names, source=self._metadata.name,
            left_out=not stop,
        )  # fmt: skip
        if stop:
            raise UserValueError(
                f"{message}; the lvis package evaluates "
                "every image of the annotation file, so their objects would count as missed. "
                "Fix those images (or remove them from the json), or evaluate with "
                "dataloader.evaluator.backend=faster_coco_eval, which leaves them out."
            )
        self._logger.warning(message)
        return [i for i in gt_ids if i in seen]

    def _eval_predictions(self, predictions):
        img_ids = self._predicted_image_ids(predictions) if self._do_evaluation else None
        if self.backend == "pycocotools":
            return super()._eval_predictions(predictions)
        results = list(itertools.chain(*[x["instances"] for x in predictions]))
        tasks = self._tasks or self._tasks_from_predictions(results)
        id_map = self._metadata.get("thing_dataset_id_to_contiguous_id", None)
        reverse = {v: k for k, v in id_map.items()} if id_map is not None else None
        for r in results:  # contiguous -> json ids; LVIS v1 without a map: 0-based -> 1-based
            r["category_id"] = reverse[r["category_id"]] if reverse else r["category_id"] + 1
        if self._output_dir:
            path = os.path.join(self._output_dir, "lvis_instances_results.json")
            with PathManager.open(path, "w") as f:
                f.write(json.dumps(results))
        if not self._do_evaluation:
            self._logger.info("Annotations are not available for evaluation.")
            return
        if self._faster_gt is None:
            self._faster_gt = faster_coco_gt(PathManager.get_local_path(self._metadata.json_file))
        self._logger.info("Evaluating predictions with faster-coco-eval (lvis_style) ...")
        for task in sorted(tasks):
            res = evaluate_lvis_faster(
                self._faster_gt,
                results,
                task,
                max_dets_per_image=self._max_dets_per_image or 300,
                img_ids=img_ids,
            )
            self._logger.info(f"Evaluation results for {task}:\n" + create_small_table(res))
            self._results[task] = res
