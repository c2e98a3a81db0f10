"""The converged DeepForest recipe builds what its comments say (docs/results/deepforest_convergence.md)."""

import pytest
import torch

from detectron2.config import instantiate
from freezedet.data.transforms import RandomRot90
from freezedet.engine import load_config

RECIPE = "DeepForest/faster_rcnn_fpn_p2.py"


@pytest.fixture(scope="module")
def cfg():
    return load_config(RECIPE)


def test_stride4_pyramid_matches_anchors_and_pooler(cfg):
    cfg.model.roi_heads.batch_size_per_image = 32
    model = instantiate(cfg.model)
    shapes = model.backbone.output_shape()
    assert {k: v.stride for k, v in shapes.items()} == {
        "p2": 4,
        "p3": 8,
        "p4": 16,
        "p5": 32,
        "p6": 64,
    }
    assert {v.channels for v in shapes.values()} == {128}
    anchors = model.proposal_generator.anchor_generator
    assert list(anchors.strides) == [4, 8, 16, 32, 64]
    # one anchor size per level, 4 x the level's stride (trees 17-73 px)
    sizes = [
        ((c[:, 2] - c[:, 0]) * (c[:, 3] - c[:, 1])).sqrt().mean().item()
        for c in anchors.cell_anchors
    ]
    assert sizes == pytest.approx([16.0, 32.0, 64.0, 128.0, 256.0], rel=0.02)
    scales = [1.0 / s for s in (4, 8, 16, 32)]
    assert [p.spatial_scale for p in model.roi_heads.box_pooler.level_poolers] == pytest.approx(
        scales
    )
    with torch.no_grad():
        feats = model.backbone(torch.zeros(1, 3, 416, 416))
    assert feats["p2"].shape == (1, 128, 104, 104)  # images are padded to 32


def test_views_are_cacheable_and_schedule_is_the_reference(cfg):
    augs = [instantiate(a) for a in cfg.dataloader.train.mapper.augmentations]
    assert any(isinstance(a, RandomRot90) for a in augs)
    assert cfg.model.backbone.bottom_up.feature_cache is not None
    sched = cfg.lr_multiplier.scheduler
    assert sched.num_updates == cfg.train.max_iter == 1500
    assert list(sched.milestones) == [1000, 1416]  # 2/3 and 17/18 (REF_72EP)
    assert cfg.train.eval_period * 10 <= cfg.train.max_iter  # evaluated every <= 10 %
    assert cfg.optimizer.lr == pytest.approx(0.08 * 2 / 64)  # reference LR, batch 2
    assert cfg.dataloader.train.total_batch_size == 2


def test_demo_runs_the_recipe_on_its_short_schedule():
    from freezedet.engine.demo import DEMO_CONFIG, demo_arguments

    args = demo_arguments(["train.max_iter=20"])
    assert args.config_file == DEMO_CONFIG == RECIPE
    cfg = load_config(args.config_file, args.opts)
    assert cfg.train.max_iter == 20  # the user's override wins over the demo schedule
    assert cfg.train.output_dir == "output/demo"
    default = demo_arguments([])
    demo_cfg = load_config(default.config_file, default.opts)
    assert demo_cfg.train.max_iter < 1500
    # the demo reports the recipe's test-time augmentation too (evaluated after training)
    from freezedet.engine.evaluate import has_tta

    assert has_tta(demo_cfg) and demo_cfg.tta.views == 8
    # milestones are fractions of the schedule: the demo's decay comes at 2/3 of it
    assert instantiate(cfg.lr_multiplier)(0.7) == pytest.approx(0.1)
    other = demo_arguments(["--config-file", "DeepForest/faster_rcnn_fpn.py"])
    assert other.opts == []


def test_cascade_variant_is_the_recipe_with_three_stages(cfg):
    from detectron2.modeling.roi_heads import CascadeROIHeads

    cascade = load_config("DeepForest/cascade_rcnn_fpn_p2_effl0_frozen.py")
    rh = cascade.model.roi_heads
    assert [m.thresholds for m in rh.proposal_matchers] == [[0.5], [0.6], [0.7]]
    assert [p.test_topk_per_image for p in rh.box_predictors] == [300, 300, 300]
    # the RoI heads, the train augmentations (so no feature cache), TTA and the schedule's length
    # differ from the converged recipe; the pyramid, LR and milestone fractions are its own
    assert rh.box_in_features == cfg.model.roi_heads.box_in_features
    trunk = cascade.model.backbone.bottom_up
    assert trunk.feature_cache is None and cfg.model.backbone.bottom_up.feature_cache is not None
    trunk.feature_cache = cfg.model.backbone.bottom_up.feature_cache
    assert cascade.model.backbone == cfg.model.backbone
    assert cascade.optimizer.lr == cfg.optimizer.lr
    assert cascade.train.max_iter == 2 * cfg.train.max_iter == 3000
    assert cascade.train.eval_period * 10 <= cascade.train.max_iter  # evaluated every <= 10 %
    ours, theirs = instantiate(cascade.lr_multiplier), instantiate(cfg.lr_multiplier)
    # the same LR curve over the fraction of the schedule, the same 100 warmup iterations
    for frac in (0.0, 0.5, 0.66, 0.67, 0.94, 0.95, 0.99):
        assert ours(frac) == pytest.approx(theirs(frac)), frac
    sched = cascade.lr_multiplier.scheduler
    assert list(sched.milestones) == [2000, 2833] and sched.num_updates == 3000
    assert cascade.lr_multiplier.warmup_length * 3000 == pytest.approx(100)
    rh.batch_size_per_image = 32
    model = instantiate(cascade.model)
    assert isinstance(model.roi_heads, CascadeROIHeads) and model.roi_heads.num_cascade_stages == 3


def test_cascade_recipe_jitters_scale_and_colour_and_evaluates_with_tta():
    import detectron2.data.transforms as T
    from freezedet.inference import DihedralTTA

    cascade = load_config("DeepForest/cascade_rcnn_fpn_p2_effl0_frozen.py")
    augs = [instantiate(a) for a in cascade.dataloader.train.mapper.augmentations]
    kinds = {type(a) for a in augs}
    assert {RandomRot90, T.RandomFlip, T.ResizeScale, T.FixedSizeCrop} <= kinds
    assert {T.RandomBrightness, T.RandomContrast, T.RandomSaturation} <= kinds
    cascade.dataloader.train.num_workers = 0
    batch = next(iter(instantiate(cascade.dataloader.train)))
    for d in batch:  # 400 px tiles stay 400 px (jittered, cropped / padded back)
        assert tuple(d["image"].shape) == (3, 400, 400) and len(d["instances"]) > 0
    from freezedet.engine.defaults import build_tta_model

    tta = build_tta_model(cascade, torch.nn.Identity())
    assert isinstance(tta, DihedralTTA) and len(tta.views) == 8


def _of_kind(nodes, kinds):
    return [n for n in nodes if n._target_ in kinds]


def _args(nodes):
    return [{k: v for k, v in n.items() if k != "_target_"} for n in nodes]


def test_recipe_and_aligndet_views_share_one_jitter_definition():
    import detectron2.data.transforms as T

    cascade = load_config("DeepForest/cascade_rcnn_fpn_p2_effl0_frozen.py")
    views = load_config("DeepForest/aligndet_pretrain_faster_rcnn_fpn_effl0.py").dataloader.train
    scale = (T.ResizeScale, T.FixedSizeCrop)
    colour = (T.RandomBrightness, T.RandomContrast, T.RandomSaturation)
    ours = cascade.dataloader.train.mapper.augmentations
    assert _args(_of_kind(ours, scale)) == _args(_of_kind(views.mapper.augmentations, scale))
    assert _args(_of_kind(ours, colour)) == _args(views.mapper.photometric)
    resize, crop = [instantiate(n) for n in _of_kind(ours, scale)]
    assert (resize.min_scale, resize.max_scale) == (0.8, 1.25)
    assert crop.crop_size == (400, 400) and crop.pad_value == 128.0
    colours = [instantiate(n) for n in _of_kind(ours, colour)]
    assert [(c.intensity_min, c.intensity_max) for c in colours] == [(0.8, 1.2)] * 3


def test_demo_summary_line_reports_tta_beside_the_plain_model(capsys):
    from freezedet.engine.demo import _print_summary

    summary = {
        "learning_curve": [{"iter": 71, "minutes": 1.5, "AP": 3.0, "AP50": 10.0}],
        "AP": 10.0,
        "AP50": 35.0,
        "TTA": {"AP": 14.0, "AP50": 44.0, "P@0.4": 18.0, "R@0.4": 74.0},
        "trainable_params": 8.28e6,
        "total_params": 11.2e6,
        "s_per_iter_median": 1.25,
        "peak_mem_mb": 1700,
        "iterations": 360,
        "wall_s": 540,
        "predictions_png": "output/demo/demo_predictions.png",
    }
    _print_summary(summary)
    out = capsys.readouterr().out
    assert "with test-time augmentation (after iter 360): box AP 14.0 | AP50 44.0" in out
    assert "freezedet demo: box AP 14.0 | AP50 44.0 (TTA; box AP 10.0 | AP50 35.0 without)" in out
