"""faster-coco-eval backend: same COCO bbox / segm metrics as pycocotools on labelme's real
photos (masks), fallback when the package is missing, LVIS's per-image detection cap."""

import builtins
import logging

import numpy as np
import pytest
import torch

import freezedet.data  # noqa: F401  (registers labelme_voc_train)
from detectron2.data import DatasetCatalog
from detectron2.structures import BitMasks, Boxes, BoxMode, Instances, PolygonMasks
from freezedet.evaluation import COCOEvaluator, resolve_backend
from freezedet.evaluation.backends import limit_dets_per_image


def _outputs(seed=0):
    """Per photo: each object found with a jittered box, its mask shifted by a few pixels, some
    with the wrong class, plus two false positives."""
    rng = np.random.RandomState(seed)
    inputs, outputs = [], []
    for d in DatasetCatalog.get("labelme_voc_train"):
        h, w = d["height"], d["width"]
        polys = PolygonMasks([a["segmentation"] for a in d["annotations"]])
        masks = BitMasks.from_polygon_masks(polys, h, w).tensor
        masks = torch.roll(
            masks, shifts=(int(rng.randint(-4, 5)), int(rng.randint(-4, 5))), dims=(1, 2)
        )
        fp = torch.zeros(2, h, w, dtype=torch.bool)
        fp[0, :50, :80] = fp[1, 100:180, 200:260] = True
        masks = torch.cat([masks, fp])
        boxes = [
            BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in d["annotations"]
        ]
        boxes = np.array(boxes + [[0, 0, 80, 50], [200, 100, 260, 180]], np.float32)
        boxes += rng.normal(0, 4, boxes.shape).astype(np.float32)
        classes = [a["category_id"] for a in d["annotations"]] + [14, 3]
        classes = [c if rng.rand() > 0.2 else int(rng.randint(20)) for c in classes]
        inst = Instances((h, w))
        inst.pred_boxes = Boxes(torch.from_numpy(boxes))
        inst.scores = torch.from_numpy(rng.rand(len(boxes)).astype(np.float32))
        inst.pred_classes = torch.tensor(classes)
        inst.pred_masks = masks
        inputs.append({"image_id": d["image_id"]})
        outputs.append({"instances": inst})
    return inputs, outputs


def test_coco_backends_agree_on_real_masks(tmp_path):
    inputs, outputs = _outputs()
    res = {}
    for backend in ("pycocotools", "faster_coco_eval"):
        ev = COCOEvaluator(
            "labelme_voc_train", distributed=False, output_dir=str(tmp_path), backend=backend
        )
        assert ev.backend == backend
        ev.reset()
        ev.process(inputs, outputs)
        res[backend] = ev.evaluate()
    ref, fast = res["pycocotools"], res["faster_coco_eval"]
    assert set(ref) == set(fast) == {"bbox", "segm"}
    for task in ref:
        assert 0 < ref[task]["AP"] < 100, ref[task]
        assert set(ref[task]) == set(fast[task])
        for k, v in ref[task].items():
            both_nan = np.isnan(v) and np.isnan(fast[task][k])
            assert both_nan or abs(v - fast[task][k]) <= 1e-4 * 100, (task, k, v, fast[task][k])


def test_missing_package_falls_back_with_warning(monkeypatch, caplog):
    real_import = builtins.__import__

    def no_faster(name, *args, **kwargs):
        if name.startswith("faster_coco_eval"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faster)
    with caplog.at_level(logging.WARNING):
        assert resolve_backend("faster_coco_eval") == "pycocotools"
    assert "faster_coco_eval is not importable" in caplog.text
    with pytest.raises(AssertionError, match="must be one of"):
        resolve_backend("cocoapi")


def test_limit_dets_per_image_keeps_top_scores():
    res = [{"image_id": i % 2, "score": s} for i, s in enumerate([0.1, 0.9, 0.5, 0.2, 0.7, 0.3])]
    kept = limit_dets_per_image(res, 2)
    assert [(r["image_id"], r["score"]) for r in kept] == [(1, 0.9), (0, 0.5), (0, 0.7), (1, 0.3)]
