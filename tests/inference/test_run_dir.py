"""A training run is reusable as trained: Predictor.from_config and tools/predict.py take its
output directory (config.yaml with every training override, and its weights); predicting image
files never loads the config's datasets."""

import json
import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image

import freezedet
from detectron2.config import LazyConfig
from detectron2.data import DatasetCatalog
from freezedet.engine import load_config
from freezedet.inference.predict_images import main as predict_main


def _run_dir(tmp_path, config, opts, weights, name="run"):
    """An output directory as training writes it: config.yaml (overrides included) + weights."""
    run = tmp_path / name
    run.mkdir()
    LazyConfig.save(load_config(config, opts), str(run / "config.yaml"))
    (run / "model_final.pth").symlink_to(weights)
    return run


def test_predictor_from_a_run_directory_uses_its_config_and_weights(tmp_path, checkpoints):
    config, opts, weights = checkpoints("fpn")
    run = _run_dir(tmp_path, config, opts, weights)
    from_run = freezedet.Predictor.from_config(str(run), device="cpu")
    # the training override (64-channel neck) comes from config.yaml, not the recipe's default
    assert from_run.config.model.backbone.out_channels == 64
    assert load_config(config).model.backbone.out_channels != 64
    given = freezedet.Predictor.from_config(config, weights, opts=opts, device="cpu")
    image = given.read(DatasetCatalog.get("deepforest_val")[0]["file_name"])
    a, b = from_run(image), given(image)
    assert len(a) == len(b) > 0
    assert torch.allclose(a.pred_boxes.tensor, b.pred_boxes.tensor)
    assert torch.allclose(a.scores, b.scores)
    # explicit options still override what the run gives
    score = freezedet.Predictor.from_config(
        str(run), device="cpu", opts=["model.roi_heads.box_predictor.test_score_thresh=0.9"]
    )
    assert score.config.model.roi_heads.box_predictor.test_score_thresh == 0.9
    assert (score(image).scores >= 0.9).all()
    # a run trained on a GPU predicts on this machine's device unless told
    gpu_run = _run_dir(tmp_path, config, opts + ["train.device=cuda"], weights, name="gpu_run")
    here = "cuda" if torch.cuda.is_available() else "cpu"
    assert freezedet.Predictor.from_config(str(gpu_run)).config.train.device == here
    with pytest.raises(ValueError, match="not a training run's output directory"):
        freezedet.Predictor.from_config(config, device="cpu", opts=opts)
    with pytest.raises(FileNotFoundError, match="without config.yaml"):
        freezedet.Predictor.from_config(str(tmp_path), device="cpu")


def test_predicting_files_never_loads_the_test_dataset(tmp_path, checkpoints, coco_config):
    """The class names and json ids come from the dataset's json categories; its images (here:
    a folder that does not exist) are neither read nor checked, and it is not registered."""
    _, opts, weights = checkpoints("fpn")
    name = "synth_val_never_loaded"
    unloadable = [
        f"dataloader.test.dataset.name={name}",
        f"dataloader.evaluator.dataset_name={name}",
        f"dataloader.test.dataset.image_root={tmp_path / 'no-such-folder'}",
    ]
    run = _run_dir(tmp_path, coco_config, opts + unloadable, weights)
    predictor = freezedet.Predictor.from_config(str(run), device="cpu")
    assert predictor.class_names == ["box"]
    assert predictor.metadata.thing_dataset_id_to_contiguous_id == {1: 0}
    assert name not in DatasetCatalog.list()

    image = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "preds"
    argv = ["--run", str(run), "--input", str(image), "--output", str(out), "--device", "cpu"]
    assert predict_main(argv + ["--score-threshold", "0", "--no-pictures"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results and {r["category_id"] for r in results} == {1}, results[:2]
    assert all(os.path.basename(r["file_name"]) == "photo.png" for r in results)
    assert name not in DatasetCatalog.list()


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_predict_tool_tta_without_a_tta_node(tmp_path, checkpoints):
    config, opts, weights = checkpoints("fpn")
    run = _run_dir(tmp_path, config, opts, weights)
    image = DatasetCatalog.get("deepforest_val")[0]["file_name"]
    common = ["--run", str(run), "--input", image, "--device", "cpu", "--no-pictures"]
    records = _Records()
    logger = logging.getLogger("freezedet.inference.predictor")
    level = logger.level
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    try:
        assert (
            predict_main(common + ["--output", str(tmp_path / "tta"), "--tta-views", "2", "--tta"])
            == 0
        )
    finally:
        logger.removeHandler(records)
        logger.setLevel(level)
    assert any("the config has no tta node, so DihedralTTA(views=2)" in m for m in records.messages)
    assert predict_main(common + ["--output", str(tmp_path / "plain")]) == 0
    fused = json.loads((tmp_path / "tta" / "results.json").read_text())
    single = json.loads((tmp_path / "plain" / "results.json").read_text())
    assert fused and single and max(r["score"] for r in fused) <= 1.0
    # two views fused: not the single view's detections
    assert sorted(r["score"] for r in fused) != sorted(r["score"] for r in single)


def test_evaluate_tool_takes_a_run_directory(tmp_path, checkpoints):
    """``tools/evaluate.py --run DIR`` evaluates with the run's config.yaml (its test-set override
    included) and weights; --gt/--results and --run do not mix."""
    from freezedet.evaluation.results_file import main as evaluate_main

    config, opts, weights = checkpoints("fpn")
    small_test = "dataloader.test.dataset.names=deepforest_train_10pct"
    run = _run_dir(tmp_path, config, opts + [small_test], weights)
    assert evaluate_main(["--run", str(run), "--device", "cpu"]) == 0
    with open(run / "eval" / "eval_results.json") as f:
        results = json.load(f)
    assert set(results["bbox"]) >= {"AP", "AP50"}
    saved = LazyConfig.load(str(run / "eval" / "config.yaml"))
    assert saved.dataloader.test.dataset.names == "deepforest_train_10pct"
    assert saved.train.init_checkpoint == str(run / "model_final.pth")
    with pytest.raises(SystemExit):
        evaluate_main(["--run", str(run), "--gt", "a.json", "--results", "b.json"])
    with pytest.raises(SystemExit):
        evaluate_main(["--gt", "a.json", "--results", "b.json", "--weights", "w.pth"])
    with pytest.raises(ValueError, match="holds no checkpoint"):
        os.remove(run / "model_final.pth")
        evaluate_main(["--run", str(run), "--device", "cpu"])
