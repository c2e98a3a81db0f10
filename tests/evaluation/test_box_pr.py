"""DeepForest's box precision / recall at IoU 0.4: hand-computed cases, and through
freezedet's COCOEvaluator on the real DeepForest val tiles."""

import numpy as np
import pytest
import torch

import freezedet.data  # noqa: F401  (registers deepforest_val)
from detectron2.data import DatasetCatalog
from detectron2.structures import Boxes, BoxMode, Instances
from freezedet.evaluation import COCOEvaluator
from freezedet.evaluation.box_pr import box_precision_recall


def test_hand_computed_cases():
    gt = {1: np.array([[0, 0, 10, 10], [20, 0, 30, 10]]), 2: np.array([[0, 0, 10, 10]])}
    # image 1: one exact hit, one box of IoU 50/150 = 0.33 with the second tree (a miss at 0.4),
    # one false positive far away; image 2: no prediction above the score threshold
    dt = {
        1: np.array([[0, 0, 10, 10], [25, 0, 35, 10], [50, 50, 60, 60]]),
        2: np.array([[0, 0, 10, 10]]),
    }
    scores = {1: np.array([0.9, 0.8, 0.5]), 2: np.array([0.05])}
    pr = box_precision_recall(gt, dt, scores, iou_threshold=0.4, score_threshold=0.1)
    # recall: image 1 1/2, image 2 0 (no predictions); precision: image 1 only, 1/3
    assert pr == {"precision": pytest.approx(100 / 3), "recall": pytest.approx(25.0), "images": 2}
    # a looser threshold counts the IoU-0.33 pair
    pr = box_precision_recall(gt, dt, scores, iou_threshold=0.3, score_threshold=0.1)
    assert pr["recall"] == pytest.approx(50.0) and pr["precision"] == pytest.approx(200 / 3)
    # image 2's low-scoring exact box counts once the score threshold admits it
    pr = box_precision_recall(gt, dt, scores, iou_threshold=0.4, score_threshold=0.0)
    assert pr["recall"] == pytest.approx(75.0) and pr["precision"] == pytest.approx(200 / 3)


def test_assignment_maximises_intersection_not_greedy_iou():
    # gt A overlaps both predictions; gt B only the first. Greedy matching by score would give
    # the first prediction to A and leave B unmatched; the assignment gives 2 true positives.
    gt = {0: np.array([[0, 0, 10, 10], [6, 0, 16, 10]])}
    dt = {0: np.array([[5, 0, 15, 10], [0, 0, 9, 10]])}
    pr = box_precision_recall(gt, dt, {0: np.array([0.9, 0.8])}, iou_threshold=0.4)
    assert pr["recall"] == pytest.approx(100.0) and pr["precision"] == pytest.approx(100.0)


def test_images_without_ground_truth_are_not_scored():
    gt = {0: np.zeros((0, 4)), 1: np.array([[0, 0, 4, 4]])}
    dt = {0: np.array([[0, 0, 4, 4]]), 1: np.array([[0, 0, 4, 4]])}
    pr = box_precision_recall(gt, dt, {0: np.ones(1), 1: np.ones(1)})
    assert pr == {"precision": 100.0, "recall": 100.0, "images": 1}
    none = box_precision_recall(gt, {}, {})
    assert np.isnan(none["precision"]) and none["recall"] == 0.0


def _evaluate(tmp_path, records, jitter):
    ev = COCOEvaluator(
        "deepforest_val",
        distributed=False,
        output_dir=str(tmp_path),
        box_pr=dict(iou_threshold=0.4, score_threshold=0.1),
    )
    ev.reset()
    rng = np.random.RandomState(0)
    for r in records:
        boxes = np.array(
            [
                BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS)
                for a in r["annotations"]
            ],
            np.float32,
        ).reshape(-1, 4)
        w = boxes[:, 2:] - boxes[:, :2]
        boxes[:, :2] += jitter * w * rng.uniform(-1, 1, (len(boxes), 2))
        inst = Instances((r["height"], r["width"]))
        inst.pred_boxes = Boxes(torch.from_numpy(boxes))
        inst.scores = torch.ones(len(boxes))
        inst.pred_classes = torch.zeros(len(boxes), dtype=torch.long)
        ev.process([{"image_id": r["image_id"]}], [{"instances": inst}])
    return ev.evaluate()["bbox"]


def test_through_coco_evaluator_on_real_tiles(tmp_path):
    records = [r for r in DatasetCatalog.get("deepforest_val") if r["annotations"]]
    exact = _evaluate(tmp_path / "exact", records, jitter=0.0)
    assert exact["P@0.4"] == pytest.approx(100.0) and exact["R@0.4"] == pytest.approx(100.0)
    assert exact["AP"] > 99
    # moving each box's top-left corner by up to 60 % of its size loses some matches at 0.4
    moved = _evaluate(tmp_path / "moved", records, jitter=0.6)
    assert 20 < moved["R@0.4"] < 95 and moved["R@0.4"] == pytest.approx(moved["P@0.4"])
