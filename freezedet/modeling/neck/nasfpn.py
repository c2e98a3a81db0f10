"""NAS-FPN (Ghiasi, Lin, Le, "NAS-FPN: Learning Scalable Feature Pyramid Architecture for
Object Detection", CVPR 2019) as a detectron2 ``Backbone``, following the TF reference
implementation used by "Proper Reuse of Image Classification Features" (CVPR 2022).
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

__all__ = ["NASFPN_CELLS", "NASFPN", "MergeCell", "build_nasfpn_backbone", "add_nasfpn_config"]

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

_ACTIVATIONS = {"relu": F.relu, "swish": F.silu, "silu": F.silu}


def _max_pool_same(x: torch.Tensor, stride: int) -> torch.Tensor:
    """TF ``max_pooling2d(pool_size=stride + 1, strides=stride, padding='SAME')``: output is
    ``ceil(size / stride)``, padding (with -inf) at the bottom/right."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + stride + 1 - size, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), stride + 1, stride)


def _resample(x: torch.Tensor, level: int, target_level: int, target_size) -> torch.Tensor:
    """Max-pool down to a coarser level, nearest-neighbour up to a finer one."""
    if level < target_level:
        x = _max_pool_same(x, 2 ** (target_level - level))
    elif level > target_level:
        x = F.interpolate(x, size=target_size, mode="nearest")
    assert x.shape[-2:] == tuple(target_size), (
        f"resampling P{level} {tuple(x.shape[-2:])} to P{target_level} gave a different size than "
        f"{tuple(target_size)}: pad inputs to a multiple of 128 (size_divisibility)"
    )
    return x


def _global_attention(coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
    """NAS-FPN's global-pooling cell: the coarser input, max-pooled over space, gates the other."""
    gate = torch.sigmoid(coarse.amax(dim=(2, 3), keepdim=True))
    return coarse + fine * gate


class MergeCell(nn.Module):
    """One NAS-FPN merge cell: resample two nodes to ``level``, combine (sum or global
    attention), add unconsumed same-level nodes (output cells), activation, 3x3 conv, norm."""

    def __init__(self, *, level: int, combine: str, channels: int, norm: str, activation: str):
        """
        Args:
            level (int): output pyramid level (3 = stride 8).
            combine (str): "sum" or "attention".
            channels (int): feature width.
            norm (str): detectron2 norm name for the conv ("" for none).
            activation (str): "relu" or "swish".
        """
        super().__init__()
        assert combine in ("sum", "attention"), f"combine={combine!r}"
        assert activation in _ACTIVATIONS, f"activation={activation!r}: one of {list(_ACTIVATIONS)}"
        self.level = level
        self.combine = combine
        self.activation = activation
        self.conv = Conv2d(
            channels, channels, 3, padding=1, bias=not norm, norm=get_norm(norm, channels)
        )
        weight_init.c2_xavier_fill(self.conv)

    def forward(self, a, level_a, b, level_b, extra: Sequence[torch.Tensor], size):
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

    Inputs C3, C4, C5 get a 1x1 lateral conv + norm to ``out_channels``; P6 and P7 come from P5
    by stride-2 max-pooling. Then ``num_repeats`` blocks, each of the 7 searched merge cells of
    :data:`NASFPN_CELLS` (own weights per block):

    ====  =====  =========  ==========  ======
    cell  level  combine    inputs      output
    ====  =====  =========  ==========  ======
    0     P4     attention  P4, P6      no
    1     P4     sum        P4, cell 0  no
    2     P3     sum        P3, cell 1  yes
    3     P4     sum        cell 1, 2   yes
    4     P5     attention  cell 2, 3   yes
    5     P7     attention  cell 1, 4   yes
    6     P6     attention  cell 4, 5   yes
    ====  =====  =========  ==========  ======

    Resampling: max-pool down, nearest up. Output cells also add every node of their level that
    no cell has consumed yet, as the TF reference does (with this table the block inputs P5 and
    P7 enter the block only this way). A block's outputs are the last node of each level. Inputs
    must be padded to a multiple of 128 (``size_divisibility``) so every level lines up exactly.
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
        assert isinstance(
            bottom_up, Backbone
        ), f"bottom_up must be a Backbone, got {type(bottom_up)}"
        in_features = list(in_features)
        shapes = bottom_up.output_shape()
        strides = [shapes[f].stride for f in in_features]
        assert strides == [
            8,
            16,
            32,
        ], f"NASFPN needs C3, C4, C5 (strides 8, 16, 32); {in_features} have strides {strides}"
        assert num_repeats >= 1, f"num_repeats={num_repeats}"
        self.bottom_up = bottom_up
        self.in_features = in_features
        self.laterals = nn.ModuleList()
        for f in in_features:
            conv = Conv2d(
                shapes[f].channels,
                out_channels,
                1,
                bias=not norm,
                norm=get_norm(norm, out_channels),
            )
            weight_init.c2_xavier_fill(conv)
            self.laterals.append(conv)
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
        self._out_features = [f"p{level}" for level in range(3, 8)]
        self._out_feature_channels = {f: out_channels for f in self._out_features}
        self._out_feature_strides = {f"p{level}": 2**level for level in range(3, 8)}
        self._size_divisibility = 128

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    @property
    def padding_constraints(self) -> Dict[str, int]:
        return {"size_divisibility": self._size_divisibility, "square_size": 0}

    def _block(self, cells: nn.ModuleList, feats: List[torch.Tensor]) -> List[torch.Tensor]:
        levels = list(range(3, 8))
        consumed = [0] * len(feats)
        sizes = {level: f.shape[-2:] for level, f in zip(levels, feats)}
        for cell, (level, _, (i, j), is_output) in zip(cells, NASFPN_CELLS):
            consumed[i] += 1
            consumed[j] += 1
            extra = []
            if is_output:
                for k, (node_level, n) in enumerate(zip(levels, consumed)):
                    if n == 0 and node_level == level:
                        consumed[k] += 1
                        extra.append(feats[k])
            feats.append(cell(feats[i], levels[i], feats[j], levels[j], extra, sizes[level]))
            levels.append(level)
            consumed.append(0)
        # the last node of each level
        return [feats[len(levels) - 1 - levels[::-1].index(level)] for level in range(3, 8)]

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        bottom_up = self.bottom_up(x)
        feats = [lat(bottom_up[f]) for lat, f in zip(self.laterals, self.in_features)]
        feats.append(_max_pool_same(feats[-1], 2))  # P6
        feats.append(_max_pool_same(feats[-1], 2))  # P7
        for cells in self.blocks:
            feats = self._block(cells, feats)
        return dict(zip(self._out_features, feats))

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {
            f: ShapeSpec(
                channels=self._out_feature_channels[f], stride=self._out_feature_strides[f]
            )
            for f in self._out_features
        }


def add_nasfpn_config(cfg):
    """Add ``cfg.MODEL.NASFPN`` (yacs) with the defaults of :class:`NASFPN`."""
    cfg.MODEL.NASFPN = CN()
    cfg.MODEL.NASFPN.BOTTOM_UP = "build_resnet_backbone"
    cfg.MODEL.NASFPN.IN_FEATURES = ["res3", "res4", "res5"]
    cfg.MODEL.NASFPN.OUT_CHANNELS = 256
    cfg.MODEL.NASFPN.NUM_REPEATS = 7
    cfg.MODEL.NASFPN.NORM = "BN"
    cfg.MODEL.NASFPN.ACTIVATION = "relu"


@BACKBONE_REGISTRY.register()
def build_nasfpn_backbone(cfg, input_shape: ShapeSpec):
    """yacs entry point: the bottom-up backbone is built by the registry name
    ``cfg.MODEL.NASFPN.BOTTOM_UP``."""
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
