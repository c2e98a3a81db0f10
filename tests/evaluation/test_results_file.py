"""Scoring a results json without the model: the same numbers as the evaluator that wrote it
(COCO bbox + segm on labelme's real masks, both backends), results matched by file name, LVIS
ground truth recognised, clear errors."""

import json

import numpy as np
import pytest

from freezedet.evaluation import COCOEvaluator
from detectron2.utils.file_io import PathManager
from freezedet.evaluation.results_file import evaluate_results_file, match_file_names


@pytest.fixture
def evaluated(tmp_path, labelme_predictions):
    """COCOEvaluator's metrics on synthetic predictions for labelme's photos, its ground-truth
    json and the results json it wrote."""
    inputs, outputs = labelme_predictions
    ev = COCOEvaluator("labelme_voc_train", distributed=False, output_dir=str(tmp_path))
    ev.reset()
    ev.process(inputs, outputs)
    metrics = ev.evaluate()
    gt_path = PathManager.get_local_path(ev._metadata.json_file)
    with open(gt_path) as f:
        gt = json.load(f)
    return metrics, gt_path, str(tmp_path / "coco_instances_results.json"), gt


@pytest.mark.parametrize("backend", ["faster_coco_eval", "pycocotools"])
def test_results_file_scores_like_the_evaluator(evaluated, backend):
    expected, gt_path, results_path, _ = evaluated
    got = evaluate_results_file(gt_path, results_path, backend=backend)
    assert set(got) == {"bbox", "segm"}, got.keys()
    for task in got:
        for metric, value in got[task].items():
            ref = expected[task][metric]
            assert (np.isnan(ref) and np.isnan(value)) or abs(ref - value) < 1e-6, (
                task,
                metric,
                value,
                ref,
            )
    assert 0 < got["segm"]["AP"] < 100


def test_results_are_matched_to_images_by_file_name(evaluated, tmp_path):
    expected, gt_path, results_path, gt = evaluated
    results = json.loads(open(results_path).read())
    names = {im["id"]: im["file_name"] for im in gt["images"]}
    renamed = [
        dict(r, image_id=1000 + i, file_name="/elsewhere/photos/" + names[r["image_id"]])
        for i, r in enumerate(results)
    ]
    renamed.append(dict(renamed[0], file_name="/elsewhere/photos/not_in_gt.jpg"))
    path = tmp_path / "renamed.json"
    path.write_text(json.dumps(renamed))
    got = evaluate_results_file(gt_path, str(path), tasks=["bbox"])
    summary = {k: expected["bbox"][k] for k in got["bbox"]}  # the evaluator adds per-class AP
    assert got["bbox"] == pytest.approx(summary, nan_ok=True), (got, summary)
    twins = [{"id": 1, "file_name": "a/x.jpg"}, {"id": 2, "file_name": "b/x.jpg"}]
    with pytest.raises(ValueError, match="matches 2 ground-truth images by 'x.jpg'"):
        match_file_names([{"file_name": "/data/x.jpg"}], twins)
    assert match_file_names([{"file_name": "/data/b/x.jpg"}], twins)[0]["image_id"] == 2


def test_lvis_ground_truth_and_errors(long_tail_lvis, tmp_path):
    gt = json.loads(open(long_tail_lvis["val"]).read())
    perfect = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1}
        for a in gt["annotations"]
    ]
    results = tmp_path / "perfect.json"
    results.write_text(json.dumps(perfect))
    got = evaluate_results_file(long_tail_lvis["val"], str(results), tasks=["bbox"])
    assert {"APr", "APc", "APf"} <= set(got["bbox"]), got  # recognised as LVIS
    assert got["bbox"]["AP"] == pytest.approx(100.0), got
    results.write_text(json.dumps([dict(perfect[0], category_id=999)]))
    with pytest.raises(ValueError, match=r"category ids \[999\] are not in"):
        evaluate_results_file(long_tail_lvis["val"], str(results))
    results.write_text(json.dumps({"annotations": []}))
    with pytest.raises(ValueError, match="a json list of detections"):
        evaluate_results_file(long_tail_lvis["val"], str(results))
    with pytest.raises(FileNotFoundError, match="missing.json does not exist"):
        evaluate_results_file(long_tail_lvis["val"], str(tmp_path / "missing.json"))
