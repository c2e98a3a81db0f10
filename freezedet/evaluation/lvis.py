"""LVIS evaluation (AP, APr / APc / APf for bbox and segm) with a choice of backend."""

import itertools
import json
import os

from detectron2.evaluation import LVISEvaluator as _D2LVISEvaluator
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import create_small_table

from .backends import evaluate_lvis_faster, faster_coco_gt, resolve_backend

__all__ = ["LVISEvaluator"]


class LVISEvaluator(_D2LVISEvaluator):
    """detectron2's ``LVISEvaluator`` (the ``lvis`` package), or with
    ``backend="faster_coco_eval"`` the same metrics from ``COCOeval_faster(lvis_style=True)``.

    The dataset's metadata needs ``json_file`` (an LVIS-format json: categories with
    ``frequency``); datasets registered by :mod:`freezedet.data.lvis` have it.
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

    def _eval_predictions(self, predictions):
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
                self._faster_gt, results, task, max_dets_per_image=self._max_dets_per_image or 300
            )
            self._logger.info(f"Evaluation results for {task}:\n" + create_small_table(res))
            self._results[task] = res
