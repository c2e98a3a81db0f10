"""The COCO / LVIS recipes build the "Proper Reuse" reference models (issue #14): cascade IoU
thresholds, LR milestones per schedule length, trainable SyncBN in fine-tuned / from-scratch
trunks, the reference heads, levels and anchors, the B7 detector, LVIS stage-2 options. Each
value is read back from the config *and* checked on instantiated modules where it matters."""

import glob
import os

import pytest
import torch

from detectron2.config import instantiate
from detectron2.layers import FrozenBatchNorm2d, NaiveSyncBatchNorm
from detectron2.modeling.backbone import FPN
from freezedet.engine import load_config
from freezedet.engine import build_model
from freezedet.model_zoo import configs_root, get_config
from freezedet.modeling.neck import NASFPN, LastLevelP6Conv
from freezedet.modeling.proposal_generator import NormRPNHead
from freezedet.modeling.roi_heads import ConvFCNormHead
from freezedet.modeling.trainable import CLASSIFIER_PATTERNS

ROOT = configs_root()
# the 72-epoch base recipes: one per architecture, trunk and mode are overrides (r50, frozen)
COCO_72 = sorted(
    os.path.relpath(p, ROOT)
    for p in glob.glob(os.path.join(ROOT, "COCO", "*_72ep.py"))
    if "_r50_" not in os.path.basename(p)
)
TWO_STAGE_72 = [r for r in COCO_72 if not os.path.basename(r).startswith("retinanet")]
CASCADE = [r for r in COCO_72 if "cascade" in r] + [
    "COCO/cascade_rcnn_nasfpn_r50_frozen_600ep.py",
    "COCO/cascade_rcnn_nasfpn_r50_frozen_1280_600ep.py",
    "LVIS/cascade_mask_rcnn_nasfpn_r50_frozen_copypaste_72ep.py",
]
B7 = "COCO/cascade_mask_rcnn_nasfpn_effb7_frozen_copypaste_1280.py"
STAGE2 = "LVIS/cascade_mask_rcnn_nasfpn_r50_frozen_copypaste_72ep_stage2_{}.py"


def test_the_5_stage_cascade_is_gone():
    assert not glob.glob(os.path.join(ROOT, "COCO", "*5stage*")), "no reference builds 5 stages"


@pytest.mark.parametrize("name", CASCADE)
def test_cascade_iou_thresholds_are_the_references(name):
    rh = get_config(name).model.roi_heads
    assert [m.thresholds for m in rh.proposal_matchers] == [[0.5], [0.7], [0.8]], name
    assert [tuple(p.box2box_transform.weights) for p in rh.box_predictors] == [
        (10, 10, 5, 5),
        (20, 20, 10, 10),
        (30, 30, 15, 15),
    ]


@pytest.mark.parametrize(
    "name, steps, lr",
    [
        ("COCO/faster_rcnn_fpn_72ep.py", (2 / 3, 17 / 18), 0.16),
        ("COCO/retinanet_nasfpn_72ep.py", (2 / 3, 17 / 18), 0.08),
        ("COCO/cascade_rcnn_nasfpn_r50_frozen_600ep.py", (23 / 24, 59 / 60), 0.16),
        ("LVIS/cascade_mask_rcnn_nasfpn_r50_frozen_copypaste_72ep.py", (2 / 3, 17 / 18), 0.16),
        (B7, (0.9, 0.95, 0.975), 0.32),
    ],
)
def test_lr_milestones_follow_the_schedule_length(name, steps, lr):
    cfg = get_config(name)
    n = cfg.train.max_iter
    sched = cfg.lr_multiplier.scheduler
    assert sched.milestones == [int(n * s) for s in steps], (sched.milestones, n)
    assert sched["values"] == [10.0**-i for i in range(len(steps) + 1)]
    assert cfg.optimizer.lr == pytest.approx(lr), cfg.optimizer.lr
    # the TF 72-epoch config: boundaries [88704, 125664] of 133056 steps
    if name == "COCO/faster_rcnn_fpn_72ep.py":
        assert [round(m / n * 133056) for m in sched.milestones] == [88704, 125664]
    multiplier = instantiate(cfg.lr_multiplier)
    assert multiplier(steps[0] - 1e-3) == pytest.approx(1.0)
    assert multiplier(steps[0] + 1e-3) == pytest.approx(0.1)


def test_there_are_seven_base_recipes():
    assert len(COCO_72) == 7, COCO_72


@pytest.mark.parametrize(
    "name,opts",
    [(r, [f"trunk.mode={m}"]) for r in COCO_72 for m in ("finetune", "scratch")]
    + [("COCO/cascade_rcnn_nasfpn_r50_finetune_series_adapters_72ep.py", [])],
)
def test_finetune_and_scratch_train_synchronised_bn(name, opts):
    bottom_up = load_config(name, opts).model.backbone.bottom_up
    bottom_up = bottom_up.get("backbone", bottom_up)  # adapters wrap the trunk
    assert bottom_up.norm == "SyncBN" and bottom_up.mode in ("finetune", "scratch"), bottom_up


def test_finetuned_trunk_modules_are_trainable_sync_bn():
    cfg = load_config("COCO/faster_rcnn_fpn_72ep.py", ["trunk.mode=finetune"])
    cfg.train.device = "cpu"
    model = build_model(cfg)  # CPU: torch's SyncBatchNorm becomes NaiveSyncBatchNorm
    norms = [m for m in model.backbone.bottom_up.modules() if "BatchNorm" in type(m).__name__]
    assert norms and all(isinstance(m, NaiveSyncBatchNorm) for m in norms), {
        type(m).__name__ for m in norms
    }
    assert all(p.requires_grad for p in model.backbone.bottom_up.parameters())
    frozen = instantiate(get_config("COCO/faster_rcnn_fpn_72ep.py").model)
    assert all(
        isinstance(m, FrozenBatchNorm2d)
        for m in frozen.backbone.bottom_up.modules()
        if "BatchNorm" in type(m).__name__
    )


@pytest.mark.parametrize("name", TWO_STAGE_72)
def test_reference_heads_levels_and_anchors(name):
    model = get_config(name).model
    rpn, rh = model.proposal_generator, model.roi_heads
    assert rpn.head._target_ is NormRPNHead and rpn.head.norm == "SyncBN"
    heads = rh.box_heads if "box_heads" in rh else [rh.box_head]
    for h in heads:
        assert h._target_ is ConvFCNormHead
        assert (list(h.conv_dims), list(h.fc_dims)) == ([256] * 4, [1024] * 2)
        assert (h.norm, h.activation) == ("SyncBN", "swish")
    levels = range(2, 7) if "_fpn_" in name else range(3, 8)
    assert rpn.in_features == [f"p{lvl}" for lvl in levels]
    assert rh.box_in_features == [f"p{lvl}" for lvl in levels]
    assert list(rh.box_pooler.scales) == [1 / 2**lvl for lvl in levels]
    assert rpn.anchor_generator.sizes == [[8 * 2**lvl] for lvl in levels]  # anchor_size 8
    if "mask" in name:
        assert rh.mask_head.conv_norm == "BN"


@pytest.mark.parametrize(
    "name",
    ["COCO/faster_rcnn_fpn_72ep.py", "COCO/cascade_rcnn_nasfpn_72ep.py"],
)
def test_reference_model_modules(name):
    model = instantiate(get_config(name).model)
    shapes = model.backbone.output_shape()
    if "_fpn_" in name:
        assert isinstance(model.backbone, FPN)
        assert isinstance(model.backbone.top_block, LastLevelP6Conv)
        assert [s.stride for s in shapes.values()] == [4, 8, 16, 32, 64]
    else:
        assert isinstance(model.backbone, NASFPN) and len(model.backbone.blocks) == 5
        assert model.backbone.blocks[0][0].activation == "swish"
        assert [s.stride for s in shapes.values()] == [8, 16, 32, 64, 128]
    head = model.proposal_generator.rpn_head
    assert isinstance(head, NormRPNHead) and head.num_levels == 5
    box_heads = model.roi_heads.box_head
    box_heads = box_heads if isinstance(box_heads, torch.nn.ModuleList) else [box_heads]
    assert all(isinstance(h, ConvFCNormHead) and len(h.convs) == 4 for h in box_heads)
    assert model.roi_heads.box_pooler.min_level == min(int(k[1:]) for k in shapes)
    assert model.roi_heads.box_pooler.max_level == max(int(k[1:]) for k in shapes)


def test_1280_variant():
    cfg = get_config("COCO/cascade_rcnn_nasfpn_r50_frozen_1280_72ep.py")
    augs = cfg.dataloader.train.mapper.augmentations
    assert (augs[0].target_height, augs[0].target_width, tuple(augs[1].crop_size)) == (
        1280,
        1280,
        (1280, 1280),
    )
    test = cfg.dataloader.test.mapper.augmentations[0]
    assert (test.short_edge_length, test.max_size) == (1280, 1280)


def test_b7_is_the_copy_paste_reference():
    cfg = get_config(B7)
    neck, rpn, rh = cfg.model.backbone, cfg.model.proposal_generator, cfg.model.roi_heads
    assert (neck.num_repeats, neck.out_channels, neck.block, neck.combine) == (
        5,
        1024,
        "bottleneck",
        "sum",
    )
    assert (neck.activation, neck.drop_connect_rate) == ("swish", 0.2)
    assert neck.bottom_up.model_name == "tf_efficientnet_b7" and neck.bottom_up.mode == "frozen"
    assert [m.thresholds for m in rh.proposal_matchers] == [[0.6], [0.7], [0.8]]
    sizes = rpn.anchor_generator.sizes
    assert len(sizes) == 5 and all(len(s) == 3 for s in sizes)
    assert sizes[0] == pytest.approx([32, 32 * 2 ** (1 / 3), 32 * 2 ** (2 / 3)])
    assert rpn.head.num_anchors == 9 and list(rpn.head.conv_dims) == [256, 256]
    assert rh.box_heads[0].activation == "relu" and rh.mask_head.conv_norm == "SyncBN"
    assert cfg.dataloader.train.mapper.augmentations.image_size == 1280
    assert cfg.dataloader.train.total_batch_size == 256
    assert "CopyPaste" in cfg.dataloader.train.mapper._target_.__name__
    assert cfg.train.max_iter == 180000


def test_lvis_stage2_options():
    cb, fed = (get_config(STAGE2.format(k)) for k in ("cb", "fed"))
    assert list(cb.train.trainable) == list(CLASSIFIER_PATTERNS)
    assert cb.dataloader.train.sampler.repeat_factors.repeat_thresh == 0.0  # RFS off
    assert fed.dataloader.train.sampler.repeat_factors.repeat_thresh == 0.001  # RFS on
    for p in cb.model.roi_heads.box_predictors:
        assert (p.loss, p.class_balance_beta, p.class_balance_count) == (
            "softmax",
            0.999,
            "instances",
        )
    # classifier only: build_model leaves only the box classifiers trainable and freezes the
    # BN statistics of everything else (shrunk: one NAS-FPN repeat)
    cfg = load_config(
        os.path.join(ROOT, STAGE2.format("cb")),
        ["model.backbone.num_repeats=1", "train.device=cpu"],
    )
    model = build_model(cfg)
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert trainable == sorted(
        f"roi_heads.box_predictor.{s}.cls_score.{w}" for s in range(3) for w in ("weight", "bias")
    ), trainable
    norms = [type(m) for n, m in model.named_modules() if n.startswith(("backbone.", "roi_heads"))]
    assert not any("BatchNorm" in t.__name__ and t is not FrozenBatchNorm2d for t in norms)
