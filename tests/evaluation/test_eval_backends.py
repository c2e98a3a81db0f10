"""faster-coco-eval backend: same COCO bbox / segm metrics as pycocotools on labelme's real
photos (masks), fallback when the package is missing, LVIS's per-image detection cap."""

import builtins
import logging

import numpy as np
import pytest

import freezedet.data  # noqa: F401  (registers labelme_voc_train)
from freezedet.evaluation import COCOEvaluator, resolve_backend
from freezedet.evaluation.backends import limit_dets_per_image


def test_coco_backends_agree_on_real_masks(tmp_path, labelme_predictions):
    inputs, outputs = labelme_predictions
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
