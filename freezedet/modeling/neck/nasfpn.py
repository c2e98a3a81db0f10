"""NAS-FPN (Ghiasi, Lin, Le, "NAS-FPN: Learning Scalable Feature Pyramid Architecture for
Object Detection", CVPR 2019) as a detectron2 ``Backbone``, following the TF reference
implementation (tensorflow/tpu ``models/official/detection/modeling/architecture/nasfpn.py``)
used by "Proper Reuse of Image Classification Features" (CVPR 2022), including its options
``block_fn`` ("conv" / "bottleneck"), ``use_sum_for_combination`` and
``init_drop_connect_rate`` (the Copy-Paste EfficientNet-B7 config:
``projects/copy_paste/configs/cascade_maskrcnn_effb7_nasfpn_1280.yaml``).
"""

import math
from typing import Dict, List, Optional, Sequence, Tuple

import fvcore.nn.weight_init as weight_init
import torch
import torch.nn.functional as F
from torch import nn

from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.modeling import BACKBONE_REGISTRY, Backbone

from .._activation import ACTIVATIONS as _ACTIVATIONS
from ._common import build_bottom_up, check_c3_c5, make_laterals

__all__ = [
    "NASFPN_CELLS",
    "BLOCKS",
    "COMBINES",
    "NASFPN",
    "MergeCell",
    "BottleneckBlock",
    "build_freezedet_nasfpn_backbone",
]

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

# what follows a cell's merge: TF block_fn "conv" (3x3 conv + norm) or "bottleneck" (a ResNet
# bottleneck block whose output is 4x the merge width)
BLOCKS = ("conv", "bottleneck")
# "searched": each cell's own combine op; "sum": TF use_sum_for_combination (every cell sums)
COMBINES = ("searched", "sum")
BOTTLENECK_EXPANSION = 4


def _extra_inputs(cells) -> List[List[int]]:
    """Per cell, the nodes it adds besides its two inputs: an output cell adds every node of its
    level that no cell has consumed yet (the TF reference's bookkeeping; static per table)."""
    levels, consumed, out = list(_LEVELS), [0] * len(_LEVELS), []
    for level, _, (i, j), is_output in cells:
        consumed[i] += 1
        consumed[j] += 1
        extra = []
        if is_output:
            for k, (node_level, n) in enumerate(zip(levels, consumed)):
                if n == 0 and node_level == level:
                    consumed[k] += 1
                    extra.append(k)
        out.append(extra)
        levels.append(level)
        consumed.append(0)
    return out


_EXTRA = _extra_inputs(NASFPN_CELLS)


def _wider_inputs(nodes, repeat: int, width: int, out_channels: int) -> Dict[int, int]:
    """``{node: channels}`` for the nodes a cell reads whose width is not the merge width: cell
    outputs (``out_channels``), and in repeats after the first also the block inputs (the
    previous block's outputs). The first block's inputs are the ``width``-wide laterals and the
    max-pooled P6, P7."""
    wide = {k: out_channels for k in nodes if repeat > 0 or k >= len(_LEVELS)}
    return {k: c for k, c in wide.items() if c != width}


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


def _drop_connect(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """TF ``drop_connect``: drop the residual branch per sample with probability ``rate``,
    scale the kept ones by ``1 / (1 - rate)``."""
    if not training or rate == 0:
        return x
    keep = 1.0 - rate
    mask = torch.empty((x.shape[0], 1, 1, 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * mask / keep


def _conv(cin: int, cout: int, k: int, norm: str) -> Conv2d:
    conv = Conv2d(cin, cout, k, padding=k // 2, bias=not norm, norm=get_norm(norm, cout))
    weight_init.c2_msra_fill(conv)
    return conv


class BottleneckBlock(nn.Module):
    """TF NAS-FPN ``block_fn="bottleneck"`` (tensorflow/tpu ``nn_blocks.bottleneck_block``,
    stride 1, projection shortcut): 1x1 -> norm -> act -> 3x3 -> norm -> act -> 1x1 (x4 wide)
    -> norm, drop-connect on that branch, plus a 1x1 + norm projection of the input, then act."""

    def __init__(
        self, *, in_channels: int, width: int, norm: str, activation: str, drop_connect_rate: float
    ):
        """
        Args:
            in_channels (int): input channels.
            width (int): channels of the first two convs; the output has 4x as many.
            norm (str): detectron2 norm of every conv.
            activation (str): "relu" or "swish".
            drop_connect_rate (float): probability of dropping the residual branch per sample.
        """
        super().__init__()
        out = BOTTLENECK_EXPANSION * width
        self.activation = activation
        self.drop_connect_rate = drop_connect_rate
        self.shortcut = _conv(in_channels, out, 1, norm)
        self.conv1 = _conv(in_channels, width, 1, norm)
        self.conv2 = _conv(width, width, 3, norm)
        self.conv3 = _conv(width, out, 1, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = _ACTIVATIONS[self.activation]
        y = self.conv3(act(self.conv2(act(self.conv1(x)))))
        y = _drop_connect(y, self.drop_connect_rate, self.training)
        return act(y + self.shortcut(x))


class MergeCell(nn.Module):
    """One NAS-FPN merge cell: project inputs whose width differs (1x1 conv + norm), resample
    them to ``level``, combine (sum or global attention), add the unconsumed same-level nodes it
    is given, activation, then the block: 3x3 conv + norm, or a bottleneck block."""

    def __init__(
        self,
        *,
        level: int,
        combine: str,
        channels: int,
        norm: str,
        activation: str,
        block: str = "conv",
        input_channels: Optional[Dict[int, int]] = None,
        drop_connect_rate: float = 0.0,
    ):
        """
        Args:
            level (int): output pyramid level (3 = stride 8).
            combine (str): "sum" or "attention" (global-pooling attention: the coarser input,
                after resampling, plus the other input gated by sigmoid of the coarser one's
                spatial max).
            channels (int): the merge width (TF ``fpn_feat_dims``).
            norm (str): detectron2 norm for the convs ("" for none, then convs have a bias).
            activation (str): "relu" or "swish", applied before the block.
            block (str): "conv" (output ``channels`` wide) or "bottleneck" (4x ``channels``).
            input_channels (dict[int, int] or None): node index -> channels, for the nodes this
                cell reads whose width is not ``channels``; each gets its own 1x1 conv + norm,
                as TF's ``resample_feature_map`` creates one per use.
            drop_connect_rate (float): bottleneck block only: drop-connect probability.
        """
        super().__init__()
        assert combine in ("sum", "attention"), f"combine={combine!r}: 'sum' or 'attention'"
        assert activation in _ACTIVATIONS, f"activation={activation!r}: one of {list(_ACTIVATIONS)}"
        assert block in BLOCKS, f"block={block!r}: one of {BLOCKS}"
        self.level = level
        self.combine = combine
        self.activation = activation
        self.project = nn.ModuleDict(
            {str(k): _conv(c, channels, 1, norm) for k, c in (input_channels or {}).items()}
        )
        if block == "conv":
            self.conv = Conv2d(
                channels, channels, 3, padding=1, bias=not norm, norm=get_norm(norm, channels)
            )
            weight_init.c2_xavier_fill(self.conv)
        else:
            self.block = BottleneckBlock(
                in_channels=channels,
                width=channels,
                norm=norm,
                activation=activation,
                drop_connect_rate=drop_connect_rate,
            )

    def _input(self, node: int, x: torch.Tensor) -> torch.Tensor:
        key = str(node)
        return self.project[key](x) if key in self.project else x

    def forward(
        self,
        inputs: Sequence[Tuple[torch.Tensor, int, int]],
        extra: Sequence[Tuple[torch.Tensor, int]],
        size: Tuple[int, int],
    ) -> torch.Tensor:
        """
        Args:
            inputs: the two ``(feature, level, node index)`` nodes the cell merges.
            extra: ``(feature, node index)`` of nodes already at ``self.level`` (and ``size``),
                added after combining.
            size: (H, W) of ``self.level``.
        """
        (a, level_a, node_a), (b, level_b, node_b) = inputs
        a = _resample(self._input(node_a, a), level_a, self.level, size)
        b = _resample(self._input(node_b, b), level_b, self.level, size)
        if self.combine == "sum":
            x = a + b
        else:
            x = _global_attention(a, b) if level_a >= level_b else _global_attention(b, a)
        for e, node in extra:
            x = x + self._input(node, e)
        x = _ACTIVATIONS[self.activation](x)
        return self.conv(x) if hasattr(self, "conv") else self.block(x)


class NASFPN(Backbone):
    """NAS-FPN on top of a bottom-up backbone; outputs ``p3``..``p7`` (strides 8..128), or
    ``p2``..``p6`` with ``min_level=2`` (the same graph one octave finer; levels below are
    named for ``min_level=3``).

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
    Glorot-uniform); bottleneck blocks and projections with ``c2_msra_fill`` (TF: He normal).

    Options of the TF reference: ``combine="sum"`` makes every cell sum its inputs
    (``use_sum_for_combination``); ``block="bottleneck"`` follows each merge by a ResNet
    bottleneck block (``block_fn="bottleneck"``) whose output is 4x the merge width, so the
    pyramid is ``out_channels`` wide and merges at ``out_channels // 4`` (TF
    ``fpn_feat_dims``); a cell input of another width gets its own 1x1 conv + norm projection,
    as TF's ``resample_feature_map`` does. ``drop_connect_rate`` drops bottleneck branches.
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
        block: str = "conv",
        combine: str = "searched",
        drop_connect_rate: float = 0.0,
        min_level: int = 3,
    ):
        """
        Args:
            bottom_up (Backbone): provides ``in_features`` (strides 8, 16, 32; with
                ``min_level=2`` 4, 8, 16, 32).
            in_features (Sequence[str]): names of C3, C4, C5 in ``bottom_up``'s outputs
                (C2 ... C5 with ``min_level=2``).
            out_channels (int): width of every output level (the paper: 256 or 384; with
                ``block="bottleneck"`` 4x the merge width, e.g. 1024 for TF's 256).
            num_repeats (int): stacked NAS-FPN blocks (the paper: 3, 5, 7; TF default 5).
            norm (str): detectron2 norm for laterals and cells: "BN", "SyncBN", "naiveSyncBN",
                "GN", "FrozenBN" or "" (none).
            activation (str): "relu" or "swish", applied before each cell's block (and inside
                bottleneck blocks).
            block (str): "conv" or "bottleneck" (TF ``block_fn``).
            combine (str): "searched" (each cell's op of :data:`NASFPN_CELLS`) or "sum" (TF
                ``use_sum_for_combination``).
            drop_connect_rate (float): drop-connect of bottleneck blocks (TF
                ``init_drop_connect_rate``; the Copy-Paste B7 config: 0.2).
            min_level (int): 3: the paper's pyramid P3-P7. 2: the same cell graph one octave
                finer, on P2-P6 (C2-C5 laterals, P6 max-pooled), every cell's level one lower:
                for objects that need stride 4, at the same pyramid levels as an FPN P2-P6
                (not in the paper or the TF reference, which search and run P3-P7 only).
        """
        super().__init__()
        in_features = list(in_features)
        assert min_level in (2, 3), f"min_level={min_level}: 3 (P3-P7) or 2 (P2-P6)"
        shapes = check_c3_c5(bottom_up, in_features, "NASFPN", min_level=min_level)
        self._levels = tuple(level + min_level - _MIN_LEVEL for level in _LEVELS)
        assert num_repeats >= 1, f"num_repeats={num_repeats}: must be >= 1"
        assert block in BLOCKS, f"block={block!r}: one of {BLOCKS}"
        assert combine in COMBINES, f"combine={combine!r}: one of {COMBINES}"
        assert 0.0 <= drop_connect_rate < 1.0, f"drop_connect_rate={drop_connect_rate}"
        assert (
            block == "bottleneck" or drop_connect_rate == 0.0
        ), f"drop_connect_rate={drop_connect_rate} needs block='bottleneck' (got {block!r})"
        width = out_channels // BOTTLENECK_EXPANSION if block == "bottleneck" else out_channels
        assert (
            block == "conv" or width * BOTTLENECK_EXPANSION == out_channels
        ), f"out_channels={out_channels} must be a multiple of {BOTTLENECK_EXPANSION}"
        self.bottom_up = bottom_up
        self.in_features = in_features
        self.block = block
        self.laterals = make_laterals(shapes, in_features, width, norm)
        self.blocks = nn.ModuleList(
            nn.ModuleList(
                MergeCell(
                    level=level + min_level - _MIN_LEVEL,
                    combine="sum" if combine == "sum" else op,
                    channels=width,
                    norm=norm,
                    activation=activation,
                    block=block,
                    input_channels=_wider_inputs((i, j, *extra), r, width, out_channels),
                    drop_connect_rate=drop_connect_rate,
                )
                for (level, op, (i, j), _), extra in zip(NASFPN_CELLS, _EXTRA)
            )
            for r in range(num_repeats)
        )
        self._out_features = [f"p{level}" for level in self._levels]
        self._out_feature_channels = {f: out_channels for f in self._out_features}
        self._out_feature_strides = {f"p{level}": 2**level for level in self._levels}
        self._size_divisibility = 2 ** self._levels[-1]

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    @property
    def padding_constraints(self) -> Dict[str, int]:
        return {"size_divisibility": self._size_divisibility, "square_size": 0}

    def _block(self, cells: nn.ModuleList, feats: List[torch.Tensor]) -> List[torch.Tensor]:
        levels = list(self._levels)
        sizes = {level: tuple(f.shape[-2:]) for level, f in zip(levels, feats)}
        outputs = {}
        for cell, (_, _, (i, j), is_output), extra in zip(cells, NASFPN_CELLS, _EXTRA):
            node = cell(
                [(feats[i], levels[i], i), (feats[j], levels[j], j)],
                [(feats[k], k) for k in extra],
                sizes[cell.level],
            )
            feats.append(node)
            levels.append(cell.level)
            if is_output:
                outputs[cell.level] = node
        return [outputs[level] for level in self._levels]

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
        while len(feats) < len(self._levels):  # P6, P7 (P6 only from C2-C5)
            feats.append(_max_pool_same(feats[-1], 2))
        for cells in self.blocks:
            feats = self._block(cells, feats)
        return dict(zip(self._out_features, feats))


@BACKBONE_REGISTRY.register()
def build_freezedet_nasfpn_backbone(cfg, input_shape: ShapeSpec):
    """yacs (after ``freezedet.config.add_freezedet_config``): NAS-FPN with
    ``MODEL.FREEZEDET.NASFPN.*`` on the bottom-up backbone of ``MODEL.FREEZEDET.BOTTOM_UP``, all
    its levels in (``configs/common/models/faster_rcnn_nasfpn.py``)."""
    bottom_up = build_bottom_up(cfg, input_shape)
    c = cfg.MODEL.FREEZEDET.NASFPN
    return NASFPN(
        bottom_up=bottom_up,
        in_features=list(bottom_up.output_shape()),
        out_channels=c.OUT_CHANNELS,
        num_repeats=c.NUM_REPEATS,
        norm=c.NORM,
        activation=c.ACTIVATION,
        block=c.BLOCK,
        combine=c.COMBINE,
        drop_connect_rate=c.DROP_CONNECT_RATE,
        min_level=c.MIN_LEVEL,
    )
