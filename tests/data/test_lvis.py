"""LVIS-format data on real images: a small json built from labelme's VOC photos (polygon masks)
and DeepForest tiles (boxes) with a synthetic long-tailed category set (rare / common / frequent
all present). Registration + metadata, repeat factors against a hand computation, clear errors,
and both evaluation backends end to end (APr / APc / APf, agreement)."""

import json
import math
import os

import numpy as np
import pytest
import torch

import freezedet.data  # noqa: F401  (registers labelme_voc_train, deepforest_val)
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.samplers import RepeatFactorTrainingSampler
from detectron2.structures import BoxMode
from freezedet.data.lvis import (
    category_image_counts,
    category_instance_counts,
    check_lvis_json,
    lvis_json_dataset,
)
from freezedet.data.validate import checked_dataset_dicts
from freezedet.evaluation import LVISEvaluator


@pytest.fixture(scope="module")
def lvis_data(long_tail_lvis):
    json_file, image_root = long_tail_lvis["train"], long_tail_lvis["image_root"]
    dicts = lvis_json_dataset(name="lt_lvis_test", json_file=json_file, image_root=image_root)
    return json_file, image_root, dicts, long_tail_lvis


def test_registration_and_metadata(lvis_data):
    json_file, image_root, dicts, lt = lvis_data
    assert len(dicts) == 6
    assert all(os.path.isfile(d["file_name"]) for d in dicts)
    meta = MetadataCatalog.get("lt_lvis_test")
    assert meta.evaluator_type == "lvis" and meta.thing_classes == lt["classes"]
    assert meta.class_frequency == lt["frequencies"]
    # counted independently from the source records
    records = lt["records"]
    expected = [
        sum(any(a["category_id"] == c for a in r["annotations"]) for r in records) for c in range(6)
    ]
    assert meta.class_image_count == expected and category_image_counts("lt_lvis_test") == expected
    assert expected[:3] == [3, 2, 1], expected  # tree in all tiles, snag in 2, stump in 1
    # instances (Cui et al.'s samples) are not images: many trees per tile
    instances = [
        sum(a["category_id"] == c for r in records for a in r["annotations"]) for c in range(6)
    ]
    assert meta.class_instance_count == instances, (meta.class_instance_count, instances)
    assert category_instance_counts("lt_lvis_test") == instances
    assert instances[0] > expected[0], (instances, expected)
    labelme = [d for d in dicts if d["height"] != 400]
    assert sum(len(d["annotations"]) for d in labelme) == 12
    assert all(isinstance(a["segmentation"], list) for d in dicts for a in d["annotations"])
    classes = {a["category_id"] for d in dicts for a in d["annotations"]}
    assert classes == set(range(6))


def test_repeat_factors_by_hand(lvis_data):
    _, _, dicts, _ = lvis_data
    t = 0.5
    got = RepeatFactorTrainingSampler.repeat_factors_from_category_frequency(dicts, t)
    n = len(dicts)
    cats = [{a["category_id"] for a in d["annotations"]} for d in dicts]
    freq = {c: sum(c in s for s in cats) / n for c in range(6)}
    expected = [max(max(1.0, math.sqrt(t / freq[c])) for c in s) for s in cats]
    assert torch.allclose(got, torch.tensor(expected, dtype=got.dtype))
    stump_tile = next(i for i, s in enumerate(cats) if 2 in s)
    assert got[stump_tile].item() == pytest.approx(math.sqrt(3.0))  # f = 1/6, t = 0.5
    tree_only = [i for i, s in enumerate(cats) if s == {0}]
    assert all(got[i].item() == 1.0 for i in tree_only)


def test_missing_and_bad_files_are_clear(tmp_path, lvis_data, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="lvis_v1_train.json.*DETECTRON2_DATASETS"):
        lvis_json_dataset(
            name="missing_lvis", json_file=str(tmp_path / "lvis_v1_train.json"), image_root="."
        )
    bad = tmp_path / "bad.json"
    data = json.load(open(lvis_data[0]))
    del data["images"][0]["coco_url"]
    bad.write_text(json.dumps(data))
    with pytest.raises(KeyError, match=r"images\[0\] lacks \['coco_url'\]"):
        check_lvis_json(str(bad))
    with pytest.raises(FileNotFoundError, match="image_root"):
        lvis_json_dataset(name="no_root", json_file=lvis_data[0], image_root=str(tmp_path / "x"))
    # detectron2's built-in COCO / LVIS names (the COCO Copy-Paste recipe) without the files
    with pytest.raises(FileNotFoundError, match="instances_train2017.json.*DETECTRON2_DATASETS"):
        checked_dataset_dicts("coco_2017_train")


def _jittered_outputs(dicts, seed=0):
    """Detector-like outputs from the ground truth: jittered boxes, random scores, a false
    positive per image and some class confusions."""
    from detectron2.structures import Boxes, Instances

    rng = np.random.RandomState(seed)
    inputs, outputs = [], []
    for d in dicts:
        h, w = d["height"], d["width"]
        boxes = [
            BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in d["annotations"]
        ]
        boxes = np.array(boxes + [[10, 10, 60, 60]], dtype=np.float32)
        boxes += rng.normal(0, 3, boxes.shape).astype(np.float32)
        boxes = np.clip(boxes, 0, [w, h, w, h])
        classes = [a["category_id"] for a in d["annotations"]] + [int(rng.randint(6))]
        classes = [c if rng.rand() > 0.1 else int(rng.randint(6)) for c in classes]
        inst = Instances((h, w))
        inst.pred_boxes = Boxes(torch.from_numpy(boxes))
        inst.scores = torch.from_numpy(rng.rand(len(boxes)).astype(np.float32))
        inst.pred_classes = torch.tensor(classes)
        inputs.append({"image_id": d["image_id"]})
        outputs.append({"instances": inst})
    return inputs, outputs


def test_evaluator_backends_agree_on_apr_apc_apf(lvis_data, monkeypatch):
    """Both backends really run (a missing faster-coco-eval falls back to the lvis package with
    a warning, which would make this compare the lvis package with itself), then agree."""
    import detectron2.evaluation.lvis_evaluation as d2_lvis

    import freezedet.evaluation.lvis as fd_lvis

    calls = []

    def spy(name, fn):
        def wrapped(*args, **kwargs):
            calls.append(name)
            return fn(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(
        d2_lvis,
        "_evaluate_predictions_on_lvis",
        spy("lvis", d2_lvis._evaluate_predictions_on_lvis),
    )
    monkeypatch.setattr(
        fd_lvis, "evaluate_lvis_faster", spy("faster_coco_eval", fd_lvis.evaluate_lvis_faster)
    )
    _, _, dicts, _ = lvis_data
    all_dicts = DatasetCatalog.get("lt_lvis_test")
    inputs, outputs = _jittered_outputs(all_dicts)
    results = {}
    for backend in ("pycocotools", "faster_coco_eval"):
        calls.clear()
        ev = LVISEvaluator("lt_lvis_test", tasks=("bbox",), distributed=False, backend=backend)
        assert ev.backend == backend, f"asked for {backend}, got {ev.backend} (fallback)"
        ev.reset()
        ev.process(inputs, outputs)
        results[backend] = ev.evaluate()["bbox"]
        assert calls == ["lvis" if backend == "pycocotools" else "faster_coco_eval"], calls
    ref, fast = results["pycocotools"], results["faster_coco_eval"]
    assert {"AP", "APr", "APc", "APf"} <= set(ref) and set(ref) == set(fast)
    for k in ("APr", "APc", "APf"):
        assert 0.0 < ref[k] <= 100.0, (k, ref)
    for k in ref:
        assert abs(ref[k] - fast[k]) < 1e-4 * 100, (k, ref[k], fast[k])
