"""No silently wrong AP: images skipped from a test set leave their ground truth out of AP (with a
count), and an image with more objects than AP counts is named, in the evaluator and in
tools/evaluate.py alike."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from detectron2.structures import Boxes, Instances
from freezedet.data.coco_json import coco_json_dataset
from freezedet.evaluation import COCOEvaluator
from freezedet.evaluation.results_file import evaluate_results_file, main


def _instances(boxes_xywh, size):
    inst = Instances(size)
    inst.pred_boxes = Boxes(torch.tensor([[x, y, x + w, y + h] for x, y, w, h in boxes_xywh]))
    inst.scores = torch.linspace(1.0, 0.5, len(boxes_xywh))
    inst.pred_classes = torch.zeros(len(boxes_xywh), dtype=torch.long)
    return inst


def test_skipped_test_image_leaves_its_ground_truth_out(tmp_path, caplog):
    """Two copies of one image, the second truncated: with skip_bad_images=True a perfect
    detector scores AP 100 on what was evaluated, not 50 (the skipped copy's boxes as misses)."""
    rng = np.random.RandomState(0)
    pixels = rng.randint(0, 255, (48, 64, 3), np.uint8)
    Image.fromarray(pixels).save(tmp_path / "good.jpg", quality=90)
    Image.fromarray(pixels).save(tmp_path / "bad.jpg", quality=90)
    data = (tmp_path / "bad.jpg").read_bytes()
    (tmp_path / "bad.jpg").write_bytes(data[: len(data) // 2])
    boxes = [[4.0, 4.0, 10.0, 12.0], [30.0, 20.0, 16.0, 14.0]]
    anns = [
        {"id": 2 * i + k + 1, "image_id": i + 1, "bbox": b, "category_id": 1, "area": b[2] * b[3],
         "iscrowd": 0}
        for i in range(2) for k, b in enumerate(boxes)
    ]  # fmt: skip
    js = tmp_path / "val.json"
    js.write_text(json.dumps({
        "images": [{"id": i + 1, "file_name": f, "height": 48, "width": 64}
                   for i, f in enumerate(["good.jpg", "bad.jpg"])],
        "annotations": anns, "categories": [{"id": 1, "name": "thing"}],
    }))  # fmt: skip
    with pytest.raises(ValueError, match=r"bad.jpg cannot be decoded"):
        coco_json_dataset(
            name="skipgt_val", json_file=str(js), image_root=str(tmp_path), filter_empty=False,
            verify_images=True, skip_bad_images=False,
        )  # fmt: skip
    records = coco_json_dataset(
        name="skipgt_val", json_file=str(js), image_root=str(tmp_path), filter_empty=False,
        skip_bad_images=True,
    )  # fmt: skip
    assert [r["image_id"] for r in records] == [1]
    ap = {}
    for backend in ("pycocotools", "faster_coco_eval"):
        ev = COCOEvaluator(
            "skipgt_val", distributed=False, backend=backend,
            output_dir=str(tmp_path / backend),
        )  # fmt: skip
        ev.reset()
        with caplog.at_level("WARNING"):
            ev.process([{"image_id": 1}], [{"instances": _instances(boxes, (48, 64))}])
            ap[backend] = ev.evaluate()["bbox"]["AP"]
        assert ev.left_out == {"images": 1, "objects": 2}
    assert ap == {"pycocotools": pytest.approx(100.0), "faster_coco_eval": pytest.approx(100.0)}
    assert (
        "skipgt_val: 1 of 2 ground-truth images (2 objects) were not predicted (skipped from the "
        "test set, e.g. unreadable with skip_bad_images=True) and are left out of AP: image 2 "
        "(bad.jpg). AP is over the other 1 images." in caplog.text
    ), caplog.text
    # what it prevents: detectron2's evaluator counts the skipped copy's boxes as missed
    from detectron2.evaluation import COCOEvaluator as D2COCOEvaluator

    d2 = D2COCOEvaluator("skipgt_val", distributed=False, use_fast_impl=False)
    d2.reset()
    d2.process([{"image_id": 1}], [{"instances": _instances(boxes, (48, 64))}])
    assert d2.evaluate()["bbox"]["AP"] == pytest.approx(50.0, abs=1)


def _dense(tmp_path, n=125):
    boxes = [[10.0 * (i % 12), 10.0 * (i // 12), 8.0, 8.0] for i in range(n)]
    gt = {
        "images": [{"id": 1, "file_name": "nuclei.png", "height": 120, "width": 120},
                   {"id": 2, "file_name": "sparse.png", "height": 120, "width": 120}],
        "annotations": [{"id": i + 1, "image_id": 1, "bbox": b, "category_id": 1, "area": 64,
                         "iscrowd": 0} for i, b in enumerate(boxes)]
        + [{"id": n + 1, "image_id": 2, "bbox": [1, 1, 8, 8], "category_id": 1, "area": 64,
            "iscrowd": 0}],
        "categories": [{"id": 1, "name": "nucleus"}],
    }  # fmt: skip
    results = [
        {"image_id": 1, "category_id": 1, "bbox": b, "score": 1.0 - i / (2 * n)}
        for i, b in enumerate(boxes)
    ] + [{"image_id": 2, "category_id": 1, "bbox": [1, 1, 8, 8], "score": 0.9}]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "results.json").write_text(json.dumps(results))
    return str(tmp_path / "gt.json"), str(tmp_path / "results.json")


def test_evaluate_tool_names_dense_images_and_offers_auto(tmp_path, caplog, capsys):
    gt, results = _dense(tmp_path)
    with caplog.at_level("WARNING"):
        capped = evaluate_results_file(gt, results, tasks=["bbox"])["bbox"]["AP"]
    assert (
        "gt.json: image 1 (nuclei.png) has 125 ground-truth objects but AP counts at most 100 "
        "detections per image (1 image(s) have more than 100), so recall and AP are capped "
        "there. Pass --max-dets auto (or a number) (auto: 250" in caplog.text
    ), caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        auto = evaluate_results_file(gt, results, tasks=["bbox"], max_dets="auto")["bbox"]["AP"]
        assert evaluate_results_file(gt, results, tasks=["bbox"], max_dets=250)["bbox"]["AP"] == (
            pytest.approx(auto)
        )
    assert "AP counts at most" not in caplog.text
    assert auto == pytest.approx(100.0) and capped < 90, (auto, capped)
    # the command line takes "auto" too
    out = tmp_path / "m.json"
    assert main(["--gt", gt, "--results", results, "--max-dets", "auto", "--output", str(out)]) == 0
    assert json.loads(out.read_text())["bbox"]["AP"] == pytest.approx(100.0)
    with pytest.raises(SystemExit):
        main(["--gt", gt, "--results", results, "--max-dets", "many"])
    assert "'many': a number or 'auto'" in capsys.readouterr().err
