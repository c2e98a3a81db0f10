"""Residual adapters inside a frozen classifier trunk.

"Proper Reuse of Image Classification Features" (Vasconcelos et al., CVPR 2022) improves a frozen
ResNet-101 Cascade NAS-FPN further (COCO AP 52.8 -> 53.6) by adding residual adapters to the
frozen trunk:

- **parallel** (Rebuffi, Bilen, Vedaldi, "Efficient parametrization of multi-domain deep neural
  networks", CVPR 2018): a trainable 1x1 conv beside a frozen 3x3 / depthwise conv, same stride,
  its output added to the conv's output;
- **series** (Rebuffi, Bilen, Vedaldi, "Learning multiple visual domains with residual adapters",
  NeurIPS 2017): ``x + conv1x1(norm(x))`` after a conv (and its norm).

Adapters are zero-initialised (their last conv is zero), so an adapted trunk computes exactly the
frozen trunk at step 0. They are attached with forward hooks and registered as children of the
block, named ``adapter_<conv>``: the frozen parameters keep their names, so plain frozen
checkpoints load into an adapted model (only adapter keys are reported missing), and the
parameter report shows adapters as their own row. The trunk then runs *with* autograd, but its
frozen parameters need no gradient, so backward only keeps what the adapters' gradients need.

Supported blocks (conv adapted; the norm after it for "series"):

==========================================  ==================  =====================
block                                        parallel: beside     series: after
==========================================  ==================  =====================
detectron2 ``BottleneckBlock``                ``conv2`` (3x3)      ``conv2`` (+ its norm)
detectron2 ``BasicBlock``                     ``conv1``            ``conv1`` (+ its norm)
timm ResNet ``Bottleneck``                    ``conv2`` (3x3)      ``bn2``
timm ResNet ``BasicBlock``                    ``conv1``            ``bn1``
timm ``InvertedResidual`` (EfficientNet)      ``conv_dw``          ``bn2``
timm ``DepthwiseSeparableConv``               ``conv_dw``          ``bn1``
==========================================  ==================  =====================

detectron2's ``Conv2d`` applies its norm inside ``forward``, so there a parallel adapter's output
is added after the frozen norm rather than before it. Beside a depthwise conv, the parallel
adapter is a depthwise (channel-wise) 1x1 conv by default (``depthwise="channelwise"``), or a
full 1x1 conv (``"full"``, many more parameters on expanded channels).
"""
from typing import Dict, Optional, Sequence

import torch
from torch import nn

from detectron2.layers import get_norm

__all__ = ["SUPPORTED_BLOCKS", "ResidualAdapter", "add_residual_adapters", "with_residual_adapters"]

# block class name -> (conv beside which a parallel adapter sits, module after which a series
# adapter sits)
SUPPORTED_BLOCKS: Dict[str, tuple] = {
    "BottleneckBlock": ("conv2", "conv2"),
    "BasicBlock": ("conv1", "conv1"),
    "Bottleneck": ("conv2", "bn2"),
    "InvertedResidual": ("conv_dw", "bn2"),
    "DepthwiseSeparableConv": ("conv_dw", "bn1"),
}


def _block_kind(block: nn.Module) -> Optional[str]:
    name = type(block).__name__
    if name == "BasicBlock":  # detectron2's and timm's share the name; both adapt conv1
        return name
    return name if name in SUPPORTED_BLOCKS else None


def _channels_of(module: nn.Module) -> int:
    for attr in ("out_channels", "num_features"):
        if hasattr(module, attr):
            return getattr(module, attr)
    raise TypeError(f"cannot tell the channel count of {type(module).__name__}")


class ResidualAdapter(nn.Module):
    """A zero-initialised residual adapter (see module docstring)."""

    def __init__(self, *, kind: str, in_channels: int, out_channels: int, stride: int = 1,
                 groups: int = 1, norm: str = "BN", reduction: int = 1):
        """
        Args:
            kind (str): "parallel" or "series".
            in_channels (int): channels entering the adapted conv (parallel) / adapter (series).
            out_channels (int): channels of the output the adapter adds to.
            stride (int): the adapted conv's stride (parallel).
            groups (int): conv groups of the parallel 1x1 conv (channel-wise beside depthwise).
            norm (str): detectron2 norm of a series adapter's input ("" for none).
            reduction (int): series adapters: bottleneck ``channels // reduction`` with two 1x1
                convs when > 1 (one 1x1 conv when 1, as in Rebuffi et al.).
        """
        super().__init__()
        assert kind in ("parallel", "series"), f"kind={kind!r}: 'parallel' or 'series'"
        self.kind = kind
        if kind == "parallel":
            self.norm = None
            self.convs = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, groups=groups, bias=False)
            )
        else:
            assert in_channels == out_channels, f"series adapter: {in_channels} != {out_channels}"
            self.norm = get_norm(norm, in_channels) if norm else None
            if reduction > 1:
                mid = max(1, in_channels // reduction)
                self.convs = nn.Sequential(
                    nn.Conv2d(in_channels, mid, 1, bias=False), nn.ReLU(inplace=True),
                    nn.Conv2d(mid, out_channels, 1, bias=False),
                )
            else:
                self.convs = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False))
        for m in self.convs:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.convs[-1].weight)  # exact identity at initialisation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(self.norm(x) if self.norm is not None else x)

    # forward hooks of the adapted module; bound methods (not closures) so that deepcopy of a
    # model (e.g. a momentum/EMA copy) hooks each copy to its own adapter
    def parallel_hook(self, module, inputs, output):
        return output + self(inputs[0])

    def series_hook(self, module, inputs, output):
        return output + self(output)


def _conv_geometry(conv: nn.Module):
    inner = conv
    stride = inner.stride[0] if isinstance(inner.stride, tuple) else inner.stride
    return inner.in_channels, inner.out_channels, stride, inner.groups


def _attach(block: nn.Module, block_name: str, *, kind, norm, reduction, depthwise) -> int:
    parallel_at, series_at = SUPPORTED_BLOCKS[_block_kind(block)]
    target_name = parallel_at if kind == "parallel" else series_at
    target = getattr(block, target_name)
    if kind == "parallel":
        cin, cout, stride, groups = _conv_geometry(target)
        depthwise_conv = groups > 1 and groups == cin == cout
        adapter_groups = groups if depthwise_conv and depthwise == "channelwise" else 1
        adapter = ResidualAdapter(kind=kind, in_channels=cin, out_channels=cout, stride=stride,
                                  groups=adapter_groups)
        hook = adapter.parallel_hook
    else:
        channels = _channels_of(target)
        adapter = ResidualAdapter(kind=kind, in_channels=channels, out_channels=channels,
                                  norm=norm, reduction=reduction)
        hook = adapter.series_hook
    setattr(block, f"adapter_{target_name}", adapter)
    target.register_forward_hook(hook)
    return 1


def add_residual_adapters(trunk: nn.Module, *, kind: str = "parallel",
                          stages: Optional[Sequence[str]] = None, norm: str = "BN",
                          reduction: int = 1, depthwise: str = "channelwise") -> int:
    """Add adapters to the blocks of ``trunk`` in place; returns how many were added.

    Args:
        trunk (nn.Module): a (frozen) classifier trunk: detectron2 ResNet, or a timm ResNet /
            EfficientNet(-Lite) (e.g. ``TimmBackbone.trunk``).
        kind (str): "parallel" or "series".
        stages (Sequence[str] or None): names of the stage modules whose blocks get adapters
            (e.g. ``["res4", "res5"]``, ``["layer3", "layer4"]``, ``["blocks.4", "blocks.5"]``);
            None: every supported block of the trunk.
        norm (str): norm of series adapters ("BN", "GN", "" ...).
        reduction (int): bottleneck reduction of series adapters.
        depthwise (str): parallel adapters beside depthwise convs: "channelwise" or "full".
    """
    assert depthwise in ("channelwise", "full"), f"depthwise={depthwise!r}"
    modules = dict(trunk.named_modules())
    if stages is None:
        blocks = [(n, m) for n, m in modules.items() if _block_kind(m) is not None]
        if not blocks:
            kinds = sorted({type(m).__name__ for m in trunk.children()})
            raise TypeError(
                f"{type(trunk).__name__} contains no block freezedet can adapt (children: "
                f"{kinds}); supported blocks: {sorted(SUPPORTED_BLOCKS)}"
            )
    else:
        blocks = []
        for stage in stages:
            if stage not in modules:
                raise KeyError(f"{type(trunk).__name__} has no module {stage!r}")
            for child_name, child in modules[stage].named_children():
                name = f"{stage}.{child_name}"
                if _block_kind(child) is None:
                    raise TypeError(
                        f"cannot add a residual adapter to {name}: {type(child).__module__}."
                        f"{type(child).__name__} is not a supported block "
                        f"({sorted(SUPPORTED_BLOCKS)})"
                    )
                blocks.append((name, child))
    return sum(
        _attach(b, n, kind=kind, norm=norm, reduction=reduction, depthwise=depthwise)
        for n, b in blocks
    )


def with_residual_adapters(backbone, *, kind: str = "parallel",
                           stages: Optional[Sequence[str]] = None, norm: str = "BN",
                           reduction: int = 1, depthwise: str = "channelwise"):
    """Add adapters to a freezedet classifier backbone (``TimmBackbone`` / ``FreezableResNet``)
    and return it, for lazy configs:
    ``model.backbone.bottom_up = L(with_residual_adapters)(backbone=..., kind="parallel")``.

    The trunk stays frozen (weights, BN statistics, eval mode); it runs with autograd so the
    adapters train, and the adapters' own norms follow ``model.train()``.
    """
    n = add_residual_adapters(backbone._trunk_module(), kind=kind, stages=stages, norm=norm,
                              reduction=reduction, depthwise=depthwise)
    backbone.num_adapters = n
    backbone.train(backbone.training)
    return backbone
