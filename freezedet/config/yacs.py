"""detectron2's yacs route: ``add_freezedet_config`` and the trunk builder, for projects built on
``get_cfg()`` + ``DefaultTrainer`` (``MODEL.BACKBONE.NAME``, ``MODEL.META_ARCHITECTURE``), as
detectron2's own PointRend / DeepLab / TensorMask projects extend it. LazyConfig stays the primary
route; every builder here calls the constructors the LazyConfig model files call, with the same
arguments (``configs/yacs/*.yaml`` each name the recipe they mirror)::

    from freezedet.config import add_freezedet_config

    cfg = get_cfg()
    add_freezedet_config(cfg)
    cfg.merge_from_file("configs/yacs/faster_rcnn_fpn_effl0_frozen.yaml")

Registered names: ``MODEL.BACKBONE.NAME`` = ``build_freezedet_trunk_backbone`` (the classifier
trunk alone, below), ``build_freezedet_fpn_backbone`` / ``build_freezedet_simplefpn_backbone``
(:mod:`freezedet.modeling.neck.fpn`), ``build_freezedet_nasfpn_backbone``,
``build_freezedet_plainneck_backbone``; ``MODEL.META_ARCHITECTURE`` = ``AlignDetPretrainer``
(trained by :class:`freezedet.engine.yacs.AlignDetTrainer`), ``SharedTrunkDetectors``.

The trunk builder lives here, not beside the trunks: it resolves the named
:data:`~freezedet.config.trunks.TRUNKS` records, and the modeling package does not import the
config package.
"""

from types import SimpleNamespace

from omegaconf import DictConfig

from detectron2.config import CfgNode as CN
from detectron2.config import instantiate
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY

from ..modeling.backbone import ViTBackbone, with_residual_adapters
from ..modeling.backbone.adapters import KINDS
from .trunks import MODES, TRUNKS, use_trunk

__all__ = [
    "add_freezedet_config",
    "apply_trunk_record",
    "build_freezedet_trunk_backbone",
    "trunk_record_values",
]

ADAPTER_TYPES = ("none",) + KINDS


def add_freezedet_config(cfg: CN) -> CN:
    """Add the ``MODEL.FREEZEDET.*`` and ``INPUT.TWO_VIEW.*`` keys (in place; returns ``cfg``).
    Defaults are the LazyConfig model files' (``configs/common/models``); docs/detectron2_yacs.md
    has the table."""
    f = cfg.MODEL.FREEZEDET = CN()
    # the BACKBONE_REGISTRY name of the bottom-up builder every freezedet neck builder calls
    f.BOTTOM_UP = "build_freezedet_trunk_backbone"
    f.TRUNK = CN()
    f.TRUNK.NAME = "effl0"  # a key of freezedet.config.TRUNKS
    f.TRUNK.MODE = "frozen"  # frozen | finetune | scratch
    f.TRUNK.TRAINED_NORM = ""  # norm of a trunk whose weights train; "": the mode's own
    # levels in c{k} naming (stride 2**k); renamed for the trunk (res3... for r50)
    f.TRUNK.OUT_FEATURES = ["c3", "c4", "c5"]
    f.TRUNK.WEIGHTS = ""  # a local classifier weights file loaded at construction (ViT, ConvNeXt)
    f.TRUNK.DROP_PATH_RATE = 0.0  # stochastic depth of a trunk that trains (timm / ViT trunks)
    f.VIT = CN()  # ViT trunks only: the simple feature pyramid (ViTBackbone)
    f.VIT.PYRAMID = "last"  # last | taps
    f.VIT.TAPS = []  # pyramid "taps": one block index per level; []: evenly spaced
    f.VIT.FINAL_NORM = True
    f.VIT.PYRAMID_NORM = "LN"
    f.ADAPTERS = CN()  # residual adapters inside the trunk ("Proper Reuse", Sec. 5)
    f.ADAPTERS.TYPE = "none"  # none | parallel | series
    f.ADAPTERS.STAGES = []  # stage names ("blocks.5", "res4") or indices (-1); []: every stage
    f.ADAPTERS.NORM = None  # None: "BN" for series adapters, "" for parallel ones
    f.ADAPTERS.REDUCTION = 1
    f.ADAPTERS.DEPTHWISE = "channelwise"
    f.ADAPTERS.BOTTLENECK = 64
    f.NASFPN = CN()
    f.NASFPN.OUT_CHANNELS = 256
    f.NASFPN.NUM_REPEATS = 7
    f.NASFPN.NORM = "BN"
    f.NASFPN.ACTIVATION = "relu"
    f.NASFPN.BLOCK = "conv"
    f.NASFPN.COMBINE = "searched"
    f.NASFPN.DROP_CONNECT_RATE = 0.0
    f.NASFPN.MIN_LEVEL = 3  # 2: the cell graph on P2-P6 (bottom-up C2-C5)
    f.PLAIN_NECK = CN()
    f.PLAIN_NECK.OUT_CHANNELS = 256
    f.PLAIN_NECK.NUM_LAYERS = 1
    f.PLAIN_NECK.NORM = "BN"
    f.PLAIN_NECK.ACTIVATION = "relu"
    f.ALIGNDET = CN()
    f.ALIGNDET.DETECTOR = "GeneralizedRCNN"  # META_ARCH_REGISTRY name of the online detector
    f.ALIGNDET.TEMPERATURE = 0.5
    f.ALIGNDET.PROJECTOR_HIDDEN_DIM = 1024
    f.ALIGNDET.PROJECTOR_DIM = 256
    f.ALIGNDET.CONTRAST_WEIGHT = 1.0
    f.ALIGNDET.ROIS_PER_IMAGE = 4096
    f.ALIGNDET.BASE_MOMENTUM = 0.996  # MomentumUpdateHook (AlignDetTrainer registers it)
    f.SHARED_TRUNK = CN()
    # detector YAMLs (paths, or configs shipped with freezedet: "yacs/....yaml"); each is merged
    # over this config, whose trunk and pixel statistics they all share
    f.SHARED_TRUNK.DETECTORS = []
    f.SHARED_TRUNK.NAMES = []
    f.SHARED_TRUNK.EVAL_HEAD = ""  # "": the first detector; "*": all
    # the two views of AlignDet pre-training (freezedet.engine.yacs.AlignDetTrainer); proposals
    # come from DATASETS.PROPOSAL_FILES_TRAIN (one cache of tools/selective_search.py)
    v = cfg.INPUT.TWO_VIEW = CN()
    v.SIZE = 400  # ResizeScale + FixedSizeCrop to SIZE x SIZE
    v.MIN_SCALE = 0.8
    v.MAX_SCALE = 1.25
    v.PAD_VALUE = 128.0
    v.FLIPS = ["horizontal", "vertical"]
    v.COLOUR_JITTER = 0.2  # brightness / contrast / saturation in 1 +- this; 0: none
    v.MAX_PROPOSALS = 32
    return cfg


def _check_choice(key: str, value, valid):
    if value not in valid:
        raise ValueError(f"{key}={value!r} is not valid; valid: {', '.join(map(str, valid))}")


def _freezedet_keys(cfg) -> CN:
    if "FREEZEDET" not in cfg.MODEL:
        raise KeyError(
            "cfg.MODEL.FREEZEDET is missing: call freezedet.config.add_freezedet_config(cfg) "
            "before merging a freezedet YAML"
        )
    return cfg.MODEL.FREEZEDET


def _selection(cfg):
    """(trunk node, pixel mean, pixel std, input format, init weights) as ``use_trunk`` puts
    them into a LazyConfig recipe, for the trunk and mode ``cfg`` names."""
    t = _freezedet_keys(cfg).TRUNK
    _check_choice("MODEL.FREEZEDET.TRUNK.NAME", t.NAME, TRUNKS)
    _check_choice("MODEL.FREEZEDET.TRUNK.MODE", t.MODE, MODES)
    record = TRUNKS[t.NAME]
    bottom_up = {"out_features": list(t.OUT_FEATURES)}
    if t.WEIGHTS:
        bottom_up["weights"] = t.WEIGHTS
    if t.DROP_PATH_RATE:
        bottom_up["drop_path_rate"] = t.DROP_PATH_RATE
    if record.trunk._target_ is ViTBackbone:
        v = cfg.MODEL.FREEZEDET.VIT
        bottom_up.update(
            pyramid=v.PYRAMID,
            taps=list(v.TAPS) or None,
            final_norm=v.FINAL_NORM,
            pyramid_norm=v.PYRAMID_NORM,
        )
    # the recipes' own selection step, on a stand-in with the keys it reads and writes
    model = DictConfig({"backbone": {"bottom_up": bottom_up}}, flags={"allow_objects": True})
    loader = SimpleNamespace(train=SimpleNamespace(mapper=SimpleNamespace()))
    train = SimpleNamespace()
    use_trunk(model, loader, train, t.NAME, t.MODE, t.TRAINED_NORM or None)
    return (
        model.backbone.bottom_up,
        list(model.pixel_mean),
        list(model.pixel_std),
        model.input_format,
        train.init_checkpoint,
    )


def trunk_record_values(cfg) -> dict:
    """The keys the trunk and mode of ``cfg`` decide, as ``use_trunk`` sets them for a
    LazyConfig recipe: ``{"MODEL.PIXEL_MEAN": ..., "MODEL.PIXEL_STD": ..., "INPUT.FORMAT": ...,
    "MODEL.WEIGHTS": ...}`` (weights "" from scratch)."""
    _, mean, std, fmt, weights = _selection(cfg)
    return {
        "MODEL.PIXEL_MEAN": mean,
        "MODEL.PIXEL_STD": std,
        "INPUT.FORMAT": fmt,
        "MODEL.WEIGHTS": weights,
    }


def apply_trunk_record(cfg) -> CN:
    """Set the keys of :func:`trunk_record_values` in ``cfg`` (in place; returns ``cfg``): after
    choosing another trunk or mode, e.g. ``MODEL.FREEZEDET.TRUNK.NAME effl1``."""
    for key, value in trunk_record_values(cfg).items():
        node, leaf = cfg, key.split(".")
        for part in leaf[:-1]:
            node = node[part]
        node[leaf[-1]] = type(node[leaf[-1]])(value)
    return cfg


def _check_statistics(cfg, mean, std, fmt):
    """A pretrained trunk only sees its weights' input: a mismatch is an error, not a silently
    worse detector."""
    expected = {"MODEL.PIXEL_MEAN": mean, "MODEL.PIXEL_STD": std, "INPUT.FORMAT": fmt}
    given = {
        "MODEL.PIXEL_MEAN": [float(x) for x in cfg.MODEL.PIXEL_MEAN],
        "MODEL.PIXEL_STD": [float(x) for x in cfg.MODEL.PIXEL_STD],
        "INPUT.FORMAT": cfg.INPUT.FORMAT,
    }
    bad = {k: (given[k], v) for k, v in expected.items() if given[k] != v}
    if bad:
        t = cfg.MODEL.FREEZEDET.TRUNK
        raise ValueError(
            f"MODEL.FREEZEDET.TRUNK.NAME={t.NAME!r} (mode {t.MODE!r}) was trained on other input: "
            + "; ".join(f"{k}={g!r} (its weights need {e!r})" for k, (g, e) in bad.items())
            + ". Set them, or call freezedet.config.apply_trunk_record(cfg)."
        )


@BACKBONE_REGISTRY.register()
def build_freezedet_trunk_backbone(cfg, input_shape: ShapeSpec):
    """A classifier trunk of :data:`TRUNKS` as a bottom-up backbone: the node ``use_trunk``
    selects for ``MODEL.FREEZEDET.TRUNK.{NAME, MODE, TRAINED_NORM, OUT_FEATURES}``, with the
    adapters of ``MODEL.FREEZEDET.ADAPTERS`` (``with_residual_adapters``, what
    ``configs/common/adapters.py`` wraps around it)."""
    node, mean, std, fmt, _ = _selection(cfg)
    assert input_shape.channels == 3, f"a classifier trunk takes 3 channels, not {input_shape}"
    if MODES[cfg.MODEL.FREEZEDET.TRUNK.MODE].pretrained:
        _check_statistics(cfg, mean, std, fmt)
    a = cfg.MODEL.FREEZEDET.ADAPTERS
    _check_choice("MODEL.FREEZEDET.ADAPTERS.TYPE", a.TYPE, ADAPTER_TYPES)
    try:
        trunk = instantiate(node)
    except (TypeError, ValueError, AssertionError) as e:
        raise type(e)(f"MODEL.FREEZEDET.TRUNK ({cfg.MODEL.FREEZEDET.TRUNK.NAME}): {e}") from e
    if a.TYPE == "none":
        return trunk
    return with_residual_adapters(
        trunk,
        kind=a.TYPE,
        stages=list(a.STAGES) or None,
        norm=a.NORM,
        reduction=a.REDUCTION,
        depthwise=a.DEPTHWISE,
        bottleneck=a.BOTTLENECK,
    )
