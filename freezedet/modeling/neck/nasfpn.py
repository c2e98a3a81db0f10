"""NAS-FPN (Ghiasi, Lin, Le, "NAS-FPN: Learning Scalable Feature Pyramid Architecture for
Object Detection", CVPR 2019) as a detectron2 ``Backbone``, following the TF reference
implementation (tensorflow/tpu ``models/official/detection/modeling/architecture/nasfpn.py``)
used by "Proper Reuse of Image Classification Features" (CVPR 2022).
"""

import math
from typing import Dict, List, Sequence, Tuple

import fvcore.nn.weight_init as weight_init
import torch
import torch.nn.functional as F
from torch import nn

from detectron2.config import CfgNode as CN
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.modeling import BACKBONE_REGISTRY, Backbone

from ._common import check_c3_c5, make_laterals

__all__ = ["NASFPN_CELLS", "NASFPN", "MergeCell", "build_nasfpn_backbone", "add_nasfpn_config"]

_MIN_LEVEL, _MAX_LEVEL = 3, 7
_LEVELS = tuple(range(_MIN_LEVEL, _MAX_LEVEL + 1))

# The searched merge cells of NAS-FPN, in order:
# (output level, combine op, (input node index, input node index), is an output cell).
# Nodes 0-4 are the block's inputs P3-P7; every cell appends its output as the next node.
NASFPN_CELLS: Tuple[Tuple[int, str, Tuple[int, int], bool], ...] = (
    (4, "attention", (1, 3), False),
    (4, "sum", (1, 5), False),
    (3, "sum", (0, 6), True),
    (4, "sum", (6, 7), True),
    (5, "attention", (7, 8), True),
    (7, "attention", (6, 9), True),
    (6, "attention", (9, 10), True),
)
# a block must hand the next one exactly one node per level
assert sorted(level for level, _, _, out in NASFPN_CELLS if out) == list(_LEVELS), NASFPN_CELLS

_ACTIVATIONS = {"relu": F.relu, "swish": F.silu, "silu": F.silu}


def _max_pool_same(x: torch.Tensor, stride: int) -> torch.Tensor:
    """TF ``max_pooling2d(pool_size=stride, strides=stride, padding='SAME')``: the output is
    ``ceil(size / stride)``; the window overhang is padded with -inf, half (rounded down) at the
    top/left as TF's SAME padding does."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = math.ceil(size / stride) * stride - size
        pads += [total // 2, total - total // 2]
    if any(pads):
        x = F.pad(x, pads, value=float("-inf"))
    return F.max_pool2d(x, stride, stride)


def _resample(x: torch.Tensor, level: int, target_level: int, target_size) -> torch.Tensor:
    """Max-pool down to a coarser level; nearest-neighbour up to a finer one by repeating each
    pixel ``2**k`` times, then cropping the bottom/right overhang that odd (ceil-divided) sizes
    leave, so fine pixel ``i`` always reads coarse pixel ``i // 2**k``."""
    if level < target_level:
        return _max_pool_same(x, 2 ** (target_level - level))
    if level > target_level:
        x = F.interpolate(x, scale_factor=2 ** (level - target_level), mode="nearest")
        return x[..., : target_size[0], : target_size[1]]
    return x


def _global_attention(coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
    """NAS-FPN's global-pooling cell: the coarser input, max-pooled over space, gates the other."""
    gate = torch.sigmoid(coarse.amax(dim=(2, 3), keepdim=True))
    return coarse + fine * gate


class MergeCell(nn.Module):
    """One NAS-FPN merge cell: resample two nodes to ``level``, combine them (sum or global
    attention), add the unconsumed same-level nodes it is given, activation, 3x3 conv, norm."""

    def __init__(self, *, level: int, combine: str, channels: int, norm: str, activation: str):
        """
        Args:
            level (int): output pyramid level (3 = stride 8).
            combine (str): "sum" or "attention" (global-pooling attention: the coarser input,
                after resampling, plus the other input gated by sigmoid of the coarser one's
                spatial max).
            channels (int): feature width of inputs and output.
            norm (str): detectron2 norm name for the conv ("" for none, then the conv has a bias).
            activation (str): "relu" or "swish", applied before the conv.
        """
        super().__init__()
        assert combine in ("sum", "attention"), f"combine={combine!r}: 'sum' or 'attention'"
        assert activation in _ACTIVATIONS, f"activation={activation!r}: one of {list(_ACTIVATIONS)}"
        self.level = level
        self.combine = combine
        self.activation = activation
        self.conv = Conv2d(
            channels, channels, 3, padding=1, bias=not norm, norm=get_norm(norm, channels)
        )
        weight_init.c2_xavier_fill(self.conv)

    def forward(
        self,
        inputs: Sequence[Tuple[torch.Tensor, int]],
        extra: Sequence[torch.Tensor],
        size: Tuple[int, int],
    ) -> torch.Tensor:
        """
        Args:
            inputs: the two ``(feature, level)`` nodes the cell merges.
            extra: features already at ``self.level`` (and ``size``) added after combining.
            size: (H, W) of ``self.level``.
        """
        (a, level_a), (b, level_b) = inputs
        a = _resample(a, level_a, self.level, size)
        b = _resample(b, level_b, self.level, size)
        if self.combine == "sum":
            x = a + b
        else:
            x = _global_attention(a, b) if level_a >= level_b else _global_attention(b, a)
        for e in extra:
            x = x + e
        return self.conv(_ACTIVATIONS[self.activation](x))


class NASFPN(Backbone):
    """NAS-FPN on top of a bottom-up backbone; outputs ``p3``..``p7`` (strides 8..128).

    Inputs C3, C4, C5 each get a 1x1 lateral conv + norm to ``out_channels`` (TF skips the conv
    when the widths already match; here it is always there); P6 and P7 come from the projected
    P5 by stride-2 max-pooling. Then ``num_repeats`` blocks, each of the 7 searched merge cells
    of :data:`NASFPN_CELLS`, with their own weights per block. Nodes 0-4 are the block's
    P3-P7 inputs and cell k appends node 5 + k:

    ====  =====  =========  ================  ======
    cell  level  combine    inputs (nodes)    output
    ====  =====  =========  ================  ======
    0     P4     attention  P4, P6 (1, 3)     no
    1     P4     sum        P4, cell 0 (1, 5) no
    2     P3     sum        P3, cell 1 (0, 6) yes
    3     P4     sum        cell 1, 2 (6, 7)  yes
    4     P5     attention  cell 2, 3 (7, 8)  yes
    5     P7     attention  cell 1, 4 (6, 9)  yes
    6     P6     attention  cell 4, 5 (9, 10) yes
    ====  =====  =========  ================  ======

    Each cell resamples its inputs to its level (max-pool with kernel = stride = ``2**k`` down,
    nearest-neighbour up), combines them (sum, or global-pooling attention where the coarser
    input's sigmoid(spatial max) gates the finer one), then applies activation -> 3x3 conv
    (bias only without norm) -> norm. Output cells also add every node of their level that no
    cell has consumed yet, as the TF reference does: with this table the block inputs P5 and P7
    enter a block only this way. A block's outputs are its output cells ordered by level.

    Sizes: P(l+1) must be ``ceil(P(l) / 2)`` (max-pooling uses TF's SAME padding, upsampling
    crops the overhang), which holds for any input size with backbones that downsample like
    TF's SAME padding or detectron2's ResNet, and for every backbone when the input is a multiple
    of 128 (``size_divisibility``, what detectron2's ImageList padding gives). For those inputs
    every level is exactly ``input / stride``. Other level sizes raise a ``ValueError`` that
    names them. Convs are initialized with ``c2_xavier_fill`` like detectron2's FPN (TF uses
    Glorot-uniform).
    """

    def __init__(
        self,
        *,
        bottom_up: Backbone,
        in_features: Sequence[str],
        out_channels: int = 256,
        num_repeats: int = 7,
        norm: str = "BN",
        activation: str = "relu",
    ):
        """
        Args:
            bottom_up (Backbone): provides ``in_features`` (strides 8, 16, 32).
            in_features (Sequence[str]): names of C3, C4, C5 in ``bottom_up``'s outputs.
            out_channels (int): width of every pyramid level (the paper: 256 or 384).
            num_repeats (int): stacked NAS-FPN blocks (the paper: 3, 5, 7).
            norm (str): detectron2 norm for laterals and cells: "BN", "SyncBN", "naiveSyncBN",
                "GN", "FrozenBN" or "" (none).
            activation (str): "relu" or "swish", applied before each cell's conv.
        """
        super().__init__()
        in_features = list(in_features)
        shapes = check_c3_c5(bottom_up, in_features, "NASFPN")
        assert num_repeats >= 1, f"num_repeats={num_repeats}: must be >= 1"
        self.bottom_up = bottom_up
        self.in_features = in_features
        self.laterals = make_laterals(shapes, in_features, out_channels, norm)
        self.blocks = nn.ModuleList(
            nn.ModuleList(
                MergeCell(
                    level=level,
                    combine=combine,
                    channels=out_channels,
                    norm=norm,
                    activation=activation,
                )
                for level, combine, _, _ in NASFPN_CELLS
            )
            for _ in range(num_repeats)
        )
        self._out_features = [f"p{level}" for level in _LEVELS]
        self._out_feature_channels = {f: out_channels for f in self._out_features}
        self._out_feature_strides = {f"p{level}": 2**level for level in _LEVELS}
        self._size_divisibility = 2**_MAX_LEVEL

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    @property
    def padding_constraints(self) -> Dict[str, int]:
        return {"size_divisibility": self._size_divisibility, "square_size": 0}

    @staticmethod
    def _block(cells: nn.ModuleList, feats: List[torch.Tensor]) -> List[torch.Tensor]:
        levels = list(_LEVELS)
        consumed = [0] * len(feats)
        sizes = {level: tuple(f.shape[-2:]) for level, f in zip(levels, feats)}
        outputs = {}
        for cell, (level, _, (i, j), is_output) in zip(cells, NASFPN_CELLS):
            consumed[i] += 1
            consumed[j] += 1
            extra = []
            if is_output:
                for k, (node_level, n) in enumerate(zip(levels, consumed)):
                    if n == 0 and node_level == level:
                        consumed[k] += 1
                        extra.append(feats[k])
            node = cell([(feats[i], levels[i]), (feats[j], levels[j])], extra, sizes[level])
            feats.append(node)
            levels.append(level)
            consumed.append(0)
            if is_output:
                outputs[level] = node
        return [outputs[level] for level in _LEVELS]

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        bottom_up = self.bottom_up(x)
        feats = [lat(bottom_up[f]) for lat, f in zip(self.laterals, self.in_features)]
        for coarse, fine, name in zip(feats[1:], feats, self.in_features[1:]):
            expected = tuple(math.ceil(s / 2) for s in fine.shape[-2:])
            if tuple(coarse.shape[-2:]) != expected:
                raise ValueError(
                    f"NASFPN: input of size {tuple(x.shape[-2:])} gives bottom-up features "
                    f"{[tuple(bottom_up[f].shape[-2:]) for f in self.in_features]} for "
                    f"{self.in_features}; {name!r} should be {expected} (half the finer level, "
                    f"rounded up) so the levels line up. Pad inputs to a multiple of "
                    f"{self.size_divisibility} (size_divisibility)."
                )
        feats.append(_max_pool_same(feats[-1], 2))  # P6
        feats.append(_max_pool_same(feats[-1], 2))  # P7
        for cells in self.blocks:
            feats = self._block(cells, feats)
        return dict(zip(self._out_features, feats))


def add_nasfpn_config(cfg):
    """Add ``cfg.MODEL.NASFPN`` (yacs) with the defaults of :class:`NASFPN`. ``BOTTOM_UP`` is
    the ``BACKBONE_REGISTRY`` name of the bottom-up builder (called with the same cfg)."""
    cfg.MODEL.NASFPN = CN()
    cfg.MODEL.NASFPN.BOTTOM_UP = "build_resnet_backbone"
    cfg.MODEL.NASFPN.IN_FEATURES = ["res3", "res4", "res5"]
    cfg.MODEL.NASFPN.OUT_CHANNELS = 256
    cfg.MODEL.NASFPN.NUM_REPEATS = 7
    cfg.MODEL.NASFPN.NORM = "BN"
    cfg.MODEL.NASFPN.ACTIVATION = "relu"


@BACKBONE_REGISTRY.register()
def build_nasfpn_backbone(cfg, input_shape: ShapeSpec):
    """yacs entry point (``MODEL.BACKBONE.NAME = "build_nasfpn_backbone"`` after
    :func:`add_nasfpn_config`): the bottom-up backbone is built by the registry name
    ``cfg.MODEL.NASFPN.BOTTOM_UP``."""
    assert "NASFPN" in cfg.MODEL, "cfg.MODEL.NASFPN is missing: call add_nasfpn_config(cfg) first"
    c = cfg.MODEL.NASFPN
    bottom_up = BACKBONE_REGISTRY.get(c.BOTTOM_UP)(cfg, input_shape)
    return NASFPN(
        bottom_up=bottom_up,
        in_features=c.IN_FEATURES,
        out_channels=c.OUT_CHANNELS,
        num_repeats=c.NUM_REPEATS,
        norm=c.NORM,
        activation=c.ACTIVATION,
    )
