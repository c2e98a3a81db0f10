"""Exported frozen-trunk detectors (Faster R-CNN FPN, Cascade R-CNN NAS-FPN; TorchScript and,
where onnx / onnxruntime are installed, ONNX) give the eager model's detections on real images,
also at a size other than the traced one: boxes within 0.01 px, scores within 1e-4."""

import os

import numpy as np
import pytest

import freezedet
from detectron2.data import DatasetCatalog
from freezedet.inference.export import detection_differences, export_model, onnx_available
from freezedet.inference.export_cli import main as export_main

BOX_TOL, SCORE_TOL = 1e-2, 1e-4
FORMATS = ["torchscript"] + (["onnx"] if onnx_available() else [])


def _images(predictor):
    image = predictor.read(DatasetCatalog.get("deepforest_val")[3]["file_name"])
    return [image, np.ascontiguousarray(image[30:350, 60:316])]  # 320 x 256: not the traced size


def _assert_same(eager, exported, images):
    for image in images:
        a, b = eager(image), exported(image)
        diff = detection_differences(a, b)
        assert len(a) > 0, "no detections: nothing compared"
        assert diff["box"] <= BOX_TOL and diff["score"] <= SCORE_TOL, diff


def test_export_tool_fpn_parity(tmp_path, checkpoints, capsys):
    config, opts, weights = checkpoints("fpn")
    out = tmp_path / "exported"
    argv = ["--config-file", config, "--weights", weights, "--output", str(out)]
    assert export_main(argv + ["--format", *FORMATS, "--opts", *opts]) == 0
    printed = capsys.readouterr().out
    eager = freezedet.Predictor.from_config(config, weights, opts=opts, device="cpu")
    images = _images(eager)
    for fmt, ext in (("torchscript", ".ts"), ("onnx", ".onnx")):
        path = str(out / f"model{ext}")
        if fmt not in FORMATS:
            assert not os.path.exists(path)
            continue
        assert f"{path}: " in printed and "max box difference" in printed, printed
        exported = freezedet.Predictor.from_config(config, path, opts=opts, device="cpu")
        _assert_same(eager, exported, images)


@pytest.mark.parametrize("fmt", FORMATS)
def test_cascade_nasfpn_exports(tmp_path, checkpoints, fmt):
    config, opts, weights = checkpoints("cascade_nasfpn")
    eager = freezedet.Predictor.from_config(config, weights, opts=opts, device="cpu")
    images = _images(eager)
    path = str(tmp_path / ("model.ts" if fmt == "torchscript" else "model.onnx"))
    export_model(eager.model, eager.preprocess(images[0])["image"], path)
    exported = freezedet.Predictor.from_config(config, path, opts=opts, device="cpu")
    _assert_same(eager, exported, images)


@pytest.mark.skipif(onnx_available(), reason="onnx and onnxruntime are installed")
def test_onnx_without_the_packages_says_what_to_install(tmp_path, checkpoints):
    config, opts, weights = checkpoints("fpn")
    eager = freezedet.Predictor.from_config(config, weights, opts=opts, device="cpu")
    with pytest.raises(ImportError, match=r"pip install 'freezedet\[export\]'"):
        export_model(
            eager.model, eager.preprocess(_images(eager)[0])["image"], str(tmp_path / "m.onnx")
        )
