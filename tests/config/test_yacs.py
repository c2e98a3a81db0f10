"""The yacs route (detectron2's get_cfg + DefaultTrainer): every configs/yacs YAML builds, through
detectron2's own trainer, the model of the LazyConfig recipe it mirrors (same modules, parameter
names, shapes and trainability) and trains 2 iterations on real DeepForest tiles; bad key values
are errors naming the key."""

import math
import os

import numpy as np
import pytest
import torch

from detectron2.config import get_cfg, instantiate
from detectron2.data import DatasetCatalog
from detectron2.engine import DefaultTrainer
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone
from detectron2.utils.file_io import PathManager

from freezedet.config import add_freezedet_config, apply_trunk_record, trunk_record_values
from freezedet.data.proposals import ProposalCache
from freezedet.engine import load_config
from freezedet.engine.yacs import AlignDetTrainer
from freezedet.model_zoo import configs_root
from freezedet.modeling.backbone import TimmBackbone
from freezedet.modeling.neck import NASFPN

YACS = os.path.join(configs_root(), "yacs")
# each YAML and the LazyConfig recipe it mirrors (named in the YAML's header)
MIRRORS = {
    "faster_rcnn_fpn_effl0_frozen.yaml": "DeepForest/faster_rcnn_fpn.py",
    "faster_rcnn_fpn_effl0_frozen_parallel_adapters.yaml": (
        "DeepForest/faster_rcnn_fpn_effl0_frozen_parallel_adapters.py"
    ),
    "faster_rcnn_nasfpn_effl0_frozen.yaml": "DeepForest/faster_rcnn_nasfpn.py",
    "faster_rcnn_plainneck2_effl0_frozen.yaml": "DeepForest/faster_rcnn_plainneck2.py",
    "cascade_rcnn_nasfpn_effl0_frozen.yaml": "DeepForest/cascade_rcnn_nasfpn.py",
    "faster_rcnn_simplefpn_vits14_frozen.yaml": "DeepForest/faster_rcnn_simplefpn.py",
    "aligndet_pretrain_faster_rcnn_fpn_effl0.yaml": (
        "DeepForest/aligndet_pretrain_faster_rcnn_fpn_effl0.py"
    ),
    "shared_trunk_effl0_frozen.yaml": "DeepForest/shared_trunk_effl0_frozen.py",
}
_STEM = "backbone.bottom_up.trunk.conv_stem.weight"
DATA = "deepforest_train_10pct"  # real tiles, the recipes' own format
SIZE = 128


def _cfg(name):
    cfg = get_cfg()
    add_freezedet_config(cfg)
    cfg.merge_from_file(os.path.join(YACS, name))
    return cfg


def test_every_yacs_config_mirrors_a_recipe():
    shipped = {f for f in os.listdir(YACS) if f.endswith(".yaml") and not f.startswith("Base-")}
    assert shipped == set(MIRRORS), shipped ^ set(MIRRORS)
    for name, recipe in MIRRORS.items():
        with open(os.path.join(YACS, name)) as f:
            assert f"configs/{recipe}" in f.read(), f"{name} does not name {recipe}"


def _proposal_cache(path):
    """Ground-truth boxes as 'proposals': cheap and deterministic."""
    records = DatasetCatalog.get(DATA)
    cache = ProposalCache(path, params={}, dataset=DATA, num_images=len(records))
    for r in records:
        boxes = np.asarray([a["bbox"] for a in r["annotations"]], np.float32).reshape(-1, 4)
        cache.add(r["image_id"], boxes=boxes, height=r["height"], width=r["width"])
    cache.save()


def _shrink(cfg, tmp_path):
    """CPU-test sizes; the architecture stays the YAML's."""
    cfg.MODEL.DEVICE = "cpu"
    cfg.OUTPUT_DIR = str(tmp_path)
    cfg.SEED = 0
    cfg.DATASETS.TRAIN = (DATA,)
    cfg.DATASETS.TEST = ()
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.INPUT.MIN_SIZE_TRAIN = (SIZE,)
    cfg.INPUT.MAX_SIZE_TRAIN = SIZE
    cfg.INPUT.TWO_VIEW.SIZE = SIZE
    cfg.INPUT.TWO_VIEW.MAX_PROPOSALS = 8
    cfg.SOLVER.MAX_ITER = 2
    cfg.SOLVER.STEPS = ()
    cfg.SOLVER.WARMUP_ITERS = 0
    cfg.SOLVER.BASE_LR = 0.002
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 100
    cfg.MODEL.FREEZEDET.ALIGNDET.ROIS_PER_IMAGE = 64
    if cfg.MODEL.META_ARCHITECTURE == "AlignDetPretrainer":
        cfg.DATASETS.PROPOSAL_FILES_TRAIN = (str(tmp_path / "proposals.json"),)
        _proposal_cache(cfg.DATASETS.PROPOSAL_FILES_TRAIN[0])
    return cfg


def _layout(model):
    modules = [(n, type(m).__name__) for n, m in model.named_modules()]
    params = {n: (tuple(p.shape), p.requires_grad) for n, p in model.named_parameters()}
    return modules, params


@pytest.mark.parametrize("name", sorted(MIRRORS))
def test_yacs_config_builds_the_recipe_model_and_trains(name, tmp_path):
    cfg = _shrink(_cfg(name), tmp_path)
    trainer_cls = AlignDetTrainer if name.startswith("aligndet") else DefaultTrainer
    torch.manual_seed(0)
    trainer = trainer_cls(cfg)
    model = trainer.model
    lazy = instantiate(load_config(MIRRORS[name]).model)
    (modules, params), (lazy_modules, lazy_params) = _layout(model), _layout(lazy)
    assert modules == lazy_modules, sorted(set(modules) ^ set(lazy_modules))[:10]
    assert params == lazy_params, sorted(set(params.items()) ^ set(lazy_params.items()))[:10]
    count = sum(p.numel() for p in model.parameters())
    assert count == sum(p.numel() for p in lazy.parameters()) > 0

    trainer.resume_or_load(resume=False)  # MODEL.WEIGHTS: the trunk's ImageNet weights
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    frozen = {n: p for n, p in frozen.items() if not n.startswith("momentum.")}  # EMA copy
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    trainer.train()
    losses = trainer.storage.history("total_loss").values()
    assert len(losses) == 2 and all(math.isfinite(v) for v, _ in losses), losses
    after = dict(model.named_parameters())
    assert frozen and all(torch.equal(after[n], p) for n, p in frozen.items()), "trunk moved"
    moved = [n for n, p in trainable.items() if not torch.equal(after[n], p)]
    assert moved, "no trainable parameter changed"
    if name.startswith("aligndet"):
        assert len(trainer.storage.history("momentum").values()) == 2  # the EMA hook ran
    if cfg.MODEL.WEIGHTS:  # the ImageNet stem, wherever the model keeps its trunk(s)
        with PathManager.open(cfg.MODEL.WEIGHTS, "rb") as f:
            stem = torch.load(f, weights_only=False)["model"][_STEM]
        stems = [v for k, v in model.state_dict().items() if k.endswith("trunk.conv_stem.weight")]
        assert stems and all(torch.equal(v, stem) for v in stems)
    assert os.path.isfile(tmp_path / "model_final.pth")


def test_neck_builders_on_detectron2_resnet():
    """MODEL.FREEZEDET.BOTTOM_UP puts a freezedet neck on any registered bottom-up builder."""
    cfg = _cfg("faster_rcnn_nasfpn_effl0_frozen.yaml")
    cfg.MODEL.FREEZEDET.BOTTOM_UP = "build_resnet_backbone"
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res3", "res4", "res5"]
    cfg.MODEL.FREEZEDET.NASFPN.NUM_REPEATS = 1
    neck = build_backbone(cfg)
    assert isinstance(neck, NASFPN) and len(neck.blocks) == 1
    assert neck.in_features == ["res3", "res4", "res5"]
    out = neck.eval()(torch.zeros(1, 3, 128, 128))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        f"p{k}": (1, 128, 128 >> k, 128 >> k) for k in range(3, 8)
    }


def test_trunk_record_values_follow_use_trunk():
    cfg = _cfg("faster_rcnn_fpn_effl0_frozen.yaml")
    cfg.MODEL.FREEZEDET.TRUNK.NAME = "r50"
    apply_trunk_record(cfg)
    assert cfg.INPUT.FORMAT == "BGR" and cfg.MODEL.PIXEL_STD == [1.0, 1.0, 1.0]
    assert cfg.MODEL.WEIGHTS == "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
    cfg.MODEL.FREEZEDET.TRUNK.MODE = "scratch"
    assert trunk_record_values(cfg)["MODEL.WEIGHTS"] == ""
    cfg = _cfg("faster_rcnn_fpn_effl0_frozen.yaml")
    trunk = build_backbone(cfg).bottom_up
    assert isinstance(trunk, TimmBackbone) and trunk.is_frozen
    assert trunk.model_name == "tf_efficientnet_lite0" and trunk._out_features == ["c3", "c4", "c5"]


@pytest.mark.parametrize(
    "key, value, error, match",
    [
        ("MODEL.FREEZEDET.TRUNK.NAME", "effl9", ValueError, "MODEL.FREEZEDET.TRUNK.NAME='effl9'"),
        ("MODEL.FREEZEDET.TRUNK.MODE", "melted", ValueError, "MODEL.FREEZEDET.TRUNK.MODE"),
        ("MODEL.FREEZEDET.ADAPTERS.TYPE", "serial", ValueError, "MODEL.FREEZEDET.ADAPTERS.TYPE"),
        ("MODEL.FREEZEDET.BOTTOM_UP", "build_nothing", KeyError, "MODEL.FREEZEDET.BOTTOM_UP"),
        ("MODEL.PIXEL_STD", [1.0, 1.0, 1.0], ValueError, r"MODEL.PIXEL_STD=\[1.0, 1.0, 1.0\]"),
        ("INPUT.FORMAT", "BGR", ValueError, "INPUT.FORMAT='BGR'"),
        ("MODEL.BACKBONE.NAME", "build_freezedet_simplefpn_backbone", ValueError, "ViT trunk"),
    ],
)
def test_bad_values_name_their_key(key, value, error, match):
    cfg = _cfg("faster_rcnn_fpn_effl0_frozen.yaml")
    cfg.merge_from_list([key, value])
    with pytest.raises(error, match=match):
        build_backbone(cfg)


def test_shared_trunk_and_aligndet_keys_are_checked():
    from freezedet.modeling.meta_arch import AlignDetPretrainer, SharedTrunkDetectors

    cfg = _cfg("shared_trunk_effl0_frozen.yaml")
    cfg.MODEL.FREEZEDET.SHARED_TRUNK.NAMES = ["fpn"]
    with pytest.raises(ValueError, match="SHARED_TRUNK.DETECTORS"):
        SharedTrunkDetectors(cfg)
    cfg = _cfg("aligndet_pretrain_faster_rcnn_fpn_effl0.yaml")
    cfg.MODEL.FREEZEDET.ALIGNDET.DETECTOR = "AlignDetPretrainer"
    with pytest.raises(KeyError, match="MODEL.FREEZEDET.ALIGNDET.DETECTOR"):
        AlignDetPretrainer(cfg)


def test_freezedet_keys_are_required():
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.NAME = "build_freezedet_fpn_backbone"
    with pytest.raises(KeyError, match="add_freezedet_config"):
        build_backbone(cfg, ShapeSpec(channels=3))
