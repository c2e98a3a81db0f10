"""In-process tools/train_net.py runs: train, --resume continues, --eval-only reports AP."""

import json
import os

import pytest
import torch

from freezedet.engine import argument_parser, load_config, main
from freezedet.model_zoo import get_config_file

CONFIG = get_config_file("DeepForest/faster_rcnn_fpn.py")


def _args(synthetic_run_opts, out, flags=(), opts=()):
    base = [
        "train.init_checkpoint=",
        f"train.output_dir={out}",
        "train.log_period=1",
        "train.seed=0",
        *synthetic_run_opts,
        "optimizer.lr=0.002",
    ]
    return argument_parser().parse_args([*flags, "--config-file", CONFIG, *base, *opts])


def _metrics(out):
    with open(os.path.join(out, "metrics.json")) as f:
        return [json.loads(line) for line in f]


def test_train_resume_eval_only(synthetic_run_opts, tmp_path):
    out = str(tmp_path / "run")
    # --resume on an empty output directory: says that it starts fresh, and from what
    main(
        _args(
            synthetic_run_opts,
            out,
            flags=["--resume"],
            opts=["train.max_iter=4", "train.checkpointer.period=2"],
        )
    )
    files = ("model_final.pth", "last_checkpoint", "config.yaml", "metrics.json", "log.txt")
    for f in files + ("env.txt", "model.txt"):
        assert os.path.isfile(os.path.join(out, f)), f
    log = open(os.path.join(out, "log.txt")).read()
    assert (
        "--resume: " + out + " holds no checkpoint (no last_checkpoint file), so training "
        "starts fresh at iteration 0 from random initialisation" in log
    ), log[:3000]
    # a readable log: no colour codes, no model printout or environment table (in files)
    assert "\x1b[" not in log and "GeneralizedRCNN(" not in log and "PyTorch built with" not in log
    assert "GeneralizedRCNN(" in open(os.path.join(out, "model.txt")).read()
    assert "run summary:" in log and "warmup over the first 1 iterations" in log
    assert open(os.path.join(out, "last_checkpoint")).read() == "model_final.pth"
    first = _metrics(out)
    assert [m["iteration"] for m in first if "total_loss" in m] == [0, 1, 2, 3]
    ckpt = torch.load(os.path.join(out, "model_final.pth"), weights_only=False)
    assert ckpt["iteration"] == 3
    trunk_before = {k: v for k, v in ckpt["model"].items() if k.startswith("backbone.bottom_up.")}
    assert trunk_before, "trunk weights must be in the checkpoint"
    sched_state = ckpt["trainer"]["hooks"]["LRScheduler"]
    assert sched_state["last_epoch"] == 4, "LR scheduler state must be checkpointed"

    # --resume with a longer schedule continues from iteration 4, not 0
    main(
        _args(
            synthetic_run_opts,
            out,
            flags=["--resume"],
            opts=["train.max_iter=6", "train.checkpointer.period=2"],
        )
    )
    resumed = [m["iteration"] for m in _metrics(out) if "total_loss" in m]
    assert resumed[-2:] == [4, 5], resumed
    assert f"--resume: continuing from {out}/model_final.pth" in open(f"{out}/log.txt").read()
    # the training wall-clock is checkpointed: the resumed run continues it, never restarts it
    clock = [m["train_time_s"] for m in _metrics(out) if "train_time_s" in m]
    assert len(clock) == 6 and all(b > a for a, b in zip(clock, clock[1:])), clock
    assert ckpt["trainer"]["hooks"]["_StepStats"]["train_time_s"] == pytest.approx(clock[3])
    ckpt2 = torch.load(os.path.join(out, "model_final.pth"), weights_only=False)
    assert ckpt2["iteration"] == 5
    assert ckpt2["trainer"]["hooks"]["LRScheduler"]["last_epoch"] == 6
    # the frozen trunk (weights and BN statistics) is untouched by training
    for k, v in trunk_before.items():
        assert torch.equal(ckpt2["model"][k], v), k
    head_key = "roi_heads.box_predictor.cls_score.weight"
    assert not torch.equal(ckpt2["model"][head_key], ckpt["model"][head_key])

    results = main(
        _args(
            synthetic_run_opts,
            str(tmp_path / "eval"),
            flags=["--eval-only"],
            opts=[f"train.init_checkpoint={out}/model_final.pth"],
        )
    )
    assert set(results["bbox"]) >= {"AP", "AP50", "AP75"}
    with open(tmp_path / "eval" / "eval_results.json") as f:
        assert json.load(f)["bbox"].keys() == results["bbox"].keys()


def test_unknown_override_key_is_an_error():
    with pytest.raises(KeyError, match="has no key 'train.max_iters'"):
        load_config(CONFIG, ["train.max_iters=3"])
    with pytest.raises(KeyError, match="model.roi_heads.box_predictr"):
        load_config(CONFIG, ["model.roi_heads.box_predictr.test_score_thresh=0.1"])
    cascade = "DeepForest/cascade_rcnn_nasfpn.py"
    cfg = load_config(cascade, ["model.roi_heads.box_predictors.2.test_score_thresh=0.3"])
    assert cfg.model.roi_heads.box_predictors[2].test_score_thresh == 0.3
    with pytest.raises(KeyError, match="box_predictors.3"):
        load_config(cascade, ["model.roi_heads.box_predictors.3.test_score_thresh=0.3"])
    # new constructor arguments of a LazyCall are allowed
    cfg = load_config(CONFIG, ["model.roi_heads.box_predictor.test_nms_thresh=0.4"])
    assert cfg.model.roi_heads.box_predictor.test_nms_thresh == 0.4


def test_missing_checkpoint_is_a_clear_error(synthetic_run_opts, tmp_path):
    with pytest.raises(FileNotFoundError, match="does-not-exist.pth"):
        main(
            _args(
                synthetic_run_opts,
                str(tmp_path / "x"),
                flags=["--eval-only"],
                opts=["train.init_checkpoint=/nowhere/does-not-exist.pth"],
            )
        )


def test_syncbn_becomes_naive_syncbn_on_cpu(caplog):
    from detectron2.layers import NaiveSyncBatchNorm

    from freezedet.engine import build_model

    cfg = load_config(
        "DeepForest/faster_rcnn_nasfpn.py",
        ["model.backbone.norm=SyncBN", "train.device=cpu"],
    )
    with caplog.at_level("WARNING", logger="freezedet"):
        model = build_model(cfg)
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    n = sum(isinstance(m, NaiveSyncBatchNorm) for m in model.backbone.modules())
    assert n > 0 and f"{n} SyncBatchNorm layers replaced" in caplog.text


def test_eval_only_needs_trained_weights(synthetic_run_opts, tmp_path):
    """--eval-only evaluating random heads (AP 0, exit 0) is an error unless asked for."""
    with pytest.raises(ValueError, match="--eval-only without weights: train.init_checkpoint"):
        main(_args(synthetic_run_opts, str(tmp_path / "a"), flags=["--eval-only"]))
    # the recipe's own init_checkpoint: ImageNet trunk weights, no detector heads
    trunk = load_config(CONFIG).train.init_checkpoint
    with pytest.raises(
        ValueError, match=r"leaves \d+ of \d+ model weight tensors uninitialised .*fpn_"
    ):
        main(
            _args(
                synthetic_run_opts,
                str(tmp_path / "b"),
                flags=["--eval-only"],
                opts=[f"train.init_checkpoint={trunk}"],
            )
        )
    results = main(
        _args(
            synthetic_run_opts,
            str(tmp_path / "c"),
            flags=["--eval-only", "--allow-missing-weights"],
            opts=["model.roi_heads.box_predictor.test_score_thresh=0.5"],
        )
    )
    assert "AP" in results["bbox"]


def test_classes_must_match_the_data(synthetic_run_opts, tmp_path):
    out = str(tmp_path / "classes")
    # the test dataset is checked first, before training starts
    with pytest.raises(ValueError, match=r"num_classes=3 but dataset 'synthetic_val' has 1 cl"):
        main(_args(synthetic_run_opts, out, opts=["model.roi_heads.num_classes=3"]))


def test_tta_node_adds_an_evaluation_after_training_and_with_eval_only(
    synthetic_run_opts, tmp_path
):
    """A recipe's `tta` node: evaluated once after the last iteration (not at every
    eval_period) and with --eval-only, its results keyed "bbox_TTA" beside "bbox"."""
    recipe = tmp_path / "with_tta.py"
    recipe.write_text(
        "from detectron2.config import LazyCall as L, LazyConfig\n"
        "from freezedet.inference import DihedralTTA\n"
        f"_base = LazyConfig.load({CONFIG!r})\n"
        "model, dataloader, optimizer, train = (_base[k] for k in "
        "('model', 'dataloader', 'optimizer', 'train'))\n"
        "lr_multiplier = _base['lr_multiplier']\n"
        "tta = L(DihedralTTA)(views=2, max_detections=50)\n"
    )
    out = str(tmp_path / "run")
    opts = ["train.max_iter=2", "train.eval_period=1", "train.checkpointer.period=2"]
    args = _args(synthetic_run_opts, out, opts=opts)
    args.config_file = str(recipe)
    results = main(args)
    assert set(results) == {"bbox", "bbox_TTA"}, results.keys()
    assert set(results["bbox_TTA"]) >= {"AP", "AP50", "AP75"}
    evals = [m for m in _metrics(out) if any(k.startswith("bbox") for k in m)]
    # plain AP after iterations 1 and 2 (eval_period 1); the TTA evaluation once, at the end
    assert [("bbox/AP" in m, "bbox_TTA/AP" in m) for m in evals] == [
        (True, False),
        (True, True),
    ], evals
    assert os.path.isdir(os.path.join(out, "inference_TTA"))
    log = open(os.path.join(out, "log.txt")).read()
    expected = (
        "test-time augmentation: DihedralTTA(views=2, max_detections=50), evaluated after the "
        "last iteration"
    )
    assert expected in log, log[:3000]
    with open(os.path.join(out, "eval_results.json")) as f:
        assert set(json.load(f)) == {"bbox", "bbox_TTA"}
    args = _args(
        synthetic_run_opts,
        str(tmp_path / "eval"),
        flags=["--eval-only"],
        opts=[f"train.init_checkpoint={out}/model_final.pth"],
    )
    args.config_file = str(recipe)
    assert set(main(args)) == {"bbox", "bbox_TTA"}
