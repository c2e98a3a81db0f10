import pytest
import torch
import torch.nn.functional as F
from torch import nn

from detectron2.config import get_cfg
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.modeling import Backbone, build_resnet_backbone
from freezedet.modeling.neck import NASFPN, NASFPN_CELLS
from freezedet.modeling.neck.nasfpn import BottleneckBlock, _max_pool_same

# The table of Ghiasi et al. / tensorflow/tpu NASFPN_BLOCK_SPECS, written out independently:
# (level, combine, inputs, is_output)
PAPER_CELLS = [
    (4, "attention", (1, 3), False),
    (4, "sum", (1, 5), False),
    (3, "sum", (0, 6), True),
    (4, "sum", (6, 7), True),
    (5, "attention", (7, 8), True),
    (7, "attention", (6, 9), True),
    (6, "attention", (9, 10), True),
]
# Unconsumed same-level nodes the output cells add (worked out by hand from the table):
# cell 4 (P5) gets the block input P5 (node 2), cell 5 (P7) the block input P7 (node 4).
PAPER_EXTRA = {4: [2], 5: [4]}


def _neck(bottom_up, **kw):
    args = dict(
        bottom_up=bottom_up,
        in_features=["c3", "c4", "c5"],
        out_channels=32,
        num_repeats=2,
        norm="BN",
    )
    args.update(kw)
    return NASFPN(**args)


def _r18_nasfpn():
    """NAS-FPN on detectron2's ResNet-18, which halves sizes rounding up."""
    cfg = get_cfg()
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res3", "res4", "res5"]
    resnet = build_resnet_backbone(cfg, ShapeSpec(channels=3))
    return NASFPN(
        bottom_up=resnet, in_features=["res3", "res4", "res5"], out_channels=32, num_repeats=1
    )


def test_cell_table_matches_the_paper():
    assert [tuple(c) for c in NASFPN_CELLS] == PAPER_CELLS


def test_topology_and_output_shape(tiny_bottom_up):
    neck = _neck(tiny_bottom_up, num_repeats=3)
    assert len(neck.blocks) == 3 and all(len(cells) == 7 for cells in neck.blocks)
    for cells in neck.blocks:
        assert [c.level for c in cells] == [4, 4, 3, 4, 5, 7, 6]
        assert [c.combine for c in cells] == [c[1] for c in PAPER_CELLS]
    # own weights per repeat
    w = [cells[0].conv.weight for cells in neck.blocks]
    assert w[0] is not w[1] and not torch.equal(w[0], w[1])
    shapes = neck.output_shape()
    assert list(shapes) == ["p3", "p4", "p5", "p6", "p7"]
    assert [s.stride for s in shapes.values()] == [8, 16, 32, 64, 128]
    assert all(s.channels == 32 for s in shapes.values())
    out = neck(torch.randn(2, 3, 256, 384))
    assert list(out) == list(shapes)
    for name, t in out.items():
        s = shapes[name]
        assert tuple(t.shape) == (2, s.channels, 256 // s.stride, 384 // s.stride), (name, t.shape)
    assert neck.size_divisibility == 128
    assert neck.padding_constraints == {"size_divisibility": 128, "square_size": 0}


def _reference_forward(neck, x, sum_only=False, min_level=3):
    """NAS-FPN written straight from the TF reference with the neck's own weights: pooling as
    reshape-and-max (exact for divisible sizes), upsampling as pixel repetition. ``min_level=2``:
    every level of the table one lower, inputs C2-C5 and one pooled level."""
    shift = min_level - 3

    def resample(t, level, target):
        if level < target:
            s = 2 ** (target - level)
            n, c, h, w = t.shape
            return t.reshape(n, c, h // s, s, w // s, s).amax(dim=(3, 5))
        if level > target:
            s = 2 ** (level - target)
            return t.repeat_interleave(s, dim=2).repeat_interleave(s, dim=3)
        return t

    c = neck.bottom_up(x)
    feats = [lat(c[f]) for lat, f in zip(neck.laterals, neck.in_features)]
    while len(feats) < 5:
        feats += [resample(feats[-1], 0, 1)]
    width = neck.laterals[0].out_channels
    for cells in neck.blocks:
        levels = [level + shift for level in (3, 4, 5, 6, 7)]

        def node(k, cell):
            # TF resample_feature_map: a 1x1 conv + norm of its own where the width differs
            t = feats[k]
            return t if t.shape[1] == width else cell.project[str(k)](t)

        for k, (cell, (level, combine, (i, j), _)) in enumerate(zip(cells, PAPER_CELLS)):
            level += shift
            a = resample(node(i, cell), levels[i], level)
            b = resample(node(j, cell), levels[j], level)
            if combine == "attention" and not sum_only:
                coarse, fine = (a, b) if levels[i] >= levels[j] else (b, a)
                merged = coarse + fine * torch.sigmoid(coarse.amax(dim=(2, 3), keepdim=True))
            else:
                merged = a + b
            for e in PAPER_EXTRA.get(k, []):
                merged = merged + node(e, cell)
            act = F.relu if cell.activation == "relu" else F.silu
            if neck.block == "conv":
                feats.append(cell.conv(act(merged)))
            else:  # tpu nn_blocks.bottleneck_block, projection shortcut, stride 1
                m, blk = act(merged), cell.block
                y = blk.conv3(act(blk.conv2(act(blk.conv1(m)))))
                feats.append(act(y + blk.shortcut(m)))
            levels.append(level)
        # the last five nodes are the output cells, at levels 3, 4, 5, 7, 6
        feats = [feats[-5], feats[-4], feats[-3], feats[-1], feats[-2]]
    return feats


@pytest.mark.parametrize("activation", ["relu", "swish"])
def test_forward_matches_reference_graph(activation, tiny_bottom_up):
    torch.manual_seed(0)
    neck = _neck(tiny_bottom_up, activation=activation).eval()
    # non-trivial BN statistics so the norms are exercised
    for m in neck.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 256, 128)
    with torch.no_grad():
        out = neck(x)
        ref = _reference_forward(neck, x)
    for name, r in zip(["p3", "p4", "p5", "p6", "p7"], ref):
        torch.testing.assert_close(out[name], r, msg=lambda m: f"{name}: {m}")


class TinyBottomUpC2(nn.Module):
    """C2-C5 (6/8/12/16 channels, strides 4-32) from strided convs."""

    def __init__(self):
        super().__init__()
        self.c2 = nn.Conv2d(3, 6, 4, stride=4)
        self.c3 = nn.Conv2d(6, 8, 2, stride=2)
        self.c4 = nn.Conv2d(8, 12, 2, stride=2)
        self.c5 = nn.Conv2d(12, 16, 2, stride=2)

    def forward(self, x):
        out = {"c2": self.c2(x)}
        for name, prev in (("c3", "c2"), ("c4", "c3"), ("c5", "c4")):
            out[name] = getattr(self, name)(out[prev])
        return out


class _C2Backbone(Backbone):
    def __init__(self):
        super().__init__()
        self.net = TinyBottomUpC2()

    def forward(self, x):
        return self.net(x)

    def output_shape(self):
        chans = {"c2": 6, "c3": 8, "c4": 12, "c5": 16}
        return {f"c{k}": ShapeSpec(channels=chans[f"c{k}"], stride=2**k) for k in (2, 3, 4, 5)}


def test_min_level_2_is_the_same_graph_one_octave_finer():
    """``min_level=2``: P2-P6 from C2-C5 (P6 pooled), every cell one level lower than the paper's
    table, checked against the reference graph shifted the same way; the levels the RPN reads
    are those of an FPN P2-P6."""
    torch.manual_seed(0)
    neck = _neck(_C2Backbone(), in_features=["c2", "c3", "c4", "c5"], min_level=2).eval()
    assert [c.level for c in neck.blocks[0]] == [3, 3, 2, 3, 4, 6, 5]
    shapes = neck.output_shape()
    assert list(shapes) == ["p2", "p3", "p4", "p5", "p6"]
    assert [s.stride for s in shapes.values()] == [4, 8, 16, 32, 64]
    assert neck.size_divisibility == 64
    for m in neck.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 128, 192)
    with torch.no_grad():
        out = neck(x)
        ref = _reference_forward(neck, x, min_level=2)
    for name, r in zip(list(shapes), ref):
        assert tuple(r.shape[-2:]) == (128 // shapes[name].stride, 192 // shapes[name].stride)
        torch.testing.assert_close(out[name], r, msg=lambda m: f"{name}: {m}")
    # the paper's neck is not the same function of the same C3-C5
    with pytest.raises(AssertionError, match="C2, C3, C4, C5"):
        _neck(_C2Backbone(), in_features=["c3", "c4", "c5"], min_level=2)
    with pytest.raises(AssertionError, match="min_level=4"):
        _neck(_C2Backbone(), in_features=["c3", "c4", "c5"], min_level=4)


def test_bottleneck_sum_only_matches_reference_graph(tiny_bottom_up):
    """The Copy-Paste B7 options: bottleneck blocks (4x wide outputs, projections of wide
    inputs), sum-only merges, swish."""
    torch.manual_seed(0)
    neck = _neck(
        tiny_bottom_up,
        out_channels=64,
        block="bottleneck",
        combine="sum",
        activation="swish",
        drop_connect_rate=0.2,
    ).eval()
    assert all(c.combine == "sum" for cells in neck.blocks for c in cells)
    assert [lat.out_channels for lat in neck.laterals] == [16, 16, 16]
    # block 0 reads 16-wide laterals / P6 / P7 directly; its cell outputs (64) are projected
    assert sorted(neck.blocks[0][1].project) == ["5"], sorted(neck.blocks[0][1].project)
    assert sorted(neck.blocks[0][4].project) == ["7", "8"]  # cell 4 (P5): nodes 7, 8 + input P5
    assert sorted(neck.blocks[1][4].project) == ["2", "7", "8"]  # block 1's inputs are 64 wide
    for m in neck.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 256, 128)
    with torch.no_grad():
        out = neck(x)
        ref = _reference_forward(neck, x, sum_only=True)
    assert all(s.channels == 64 for s in neck.output_shape().values())
    for name, r in zip(["p3", "p4", "p5", "p6", "p7"], ref):
        assert out[name].shape[1] == 64, out[name].shape
        torch.testing.assert_close(out[name], r, msg=lambda m: f"{name}: {m}")


def test_drop_connect_drops_the_branch_per_sample():
    torch.manual_seed(0)
    block = BottleneckBlock(
        in_channels=8, width=4, norm="", activation="relu", drop_connect_rate=0.5
    )
    x = torch.randn(200, 8, 3, 3)
    with torch.no_grad():
        block.eval()
        full = block(x)
        block.train()
        dropped = block(x)
        shortcut_only = F.relu(block.shortcut(x))
        y = block.conv3(F.relu(block.conv2(F.relu(block.conv1(x)))))
    assert torch.allclose(full, F.relu(y + block.shortcut(x)))
    is_dropped = (dropped - shortcut_only).flatten(1).abs().amax(1) < 1e-6
    kept = ~is_dropped
    assert 60 < int(is_dropped.sum()) < 140, int(is_dropped.sum())
    # kept branches are scaled by 1 / (1 - rate)
    torch.testing.assert_close(dropped[kept], F.relu(2 * y + block.shortcut(x))[kept])


def test_max_pool_is_tf_same_with_kernel_equal_to_stride():
    x = torch.tensor([1.0, 5.0, 2.0, 3.0, 4.0]).view(1, 1, 1, 5)
    # windows [1,5] [2,3] [4]
    assert _max_pool_same(x, 2).flatten().tolist() == [5.0, 3.0, 4.0]
    # SAME pads 3: one before, two after -> windows [-,1,5,2] [3,4,-,-]
    assert _max_pool_same(x, 4).flatten().tolist() == [5.0, 4.0]
    y = torch.tensor([9.0, 0.0, 0.0, 0.0, 0.0, 7.0, 0.0, 0.0]).view(1, 1, 1, 8)
    assert _max_pool_same(y, 2).flatten().tolist() == [9.0, 0.0, 7.0, 0.0]
    assert _max_pool_same(y, 8).flatten().tolist() == [9.0]


def test_gradient_reaches_every_cell_and_lateral(tiny_bottom_up):
    torch.manual_seed(0)
    neck = _neck(tiny_bottom_up)
    out = neck(torch.randn(2, 3, 128, 128))
    sum(t.square().mean() for t in out.values()).backward()
    convs = {
        name: m.weight
        for name, m in neck.named_modules()
        if isinstance(m, torch.nn.Conv2d) and not name.startswith("bottom_up")
    }
    assert len(convs) == 3 + 2 * 7, sorted(convs)
    for name, w in convs.items():
        assert w.grad is not None and w.grad.abs().sum() > 0, f"no gradient in {name}"
    for name, p in neck.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient in {name}"


@pytest.mark.parametrize("norm", ["BN", "GN", "", "FrozenBN", "naiveSyncBN", "SyncBN"])
def test_norms_build_and_run(norm, tiny_bottom_up):
    neck = _neck(tiny_bottom_up, norm=norm, num_repeats=1)
    convs = [m for n, m in neck.named_modules() if n.endswith("conv") or n.startswith("laterals.")]
    convs = [m for m in convs if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 3 + 7
    for conv in convs:
        assert (conv.norm is None) == (norm == ""), (norm, conv.norm)
        assert (conv.bias is not None) == (norm == ""), norm
    if norm == "FrozenBN":
        assert all(isinstance(c.norm, FrozenBatchNorm2d) for c in convs)
    if norm == "GN":
        assert all(isinstance(c.norm, torch.nn.GroupNorm) for c in convs)
    # SyncBN only normalizes with batch statistics inside a process group
    neck.train(norm != "SyncBN")
    out = neck(torch.randn(2, 3, 128, 128))
    assert all(torch.isfinite(t).all() for t in out.values())


def test_activation_changes_the_output(tiny_bottom_up):
    torch.manual_seed(0)
    relu = _neck(tiny_bottom_up, num_repeats=1).eval()
    swish = _neck(tiny_bottom_up, num_repeats=1, activation="swish").eval()
    swish.load_state_dict(relu.state_dict())
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        assert not torch.allclose(relu(x)["p3"], swish(x)["p3"])


def test_misaligned_levels_raise_naming_the_shapes(tiny_bottom_up):
    with pytest.raises(AssertionError, match="strides 8, 16, 32"):
        NASFPN(bottom_up=tiny_bottom_up, in_features=["c4", "c5", "c3"])
    with pytest.raises(AssertionError, match="not among bottom_up outputs"):
        NASFPN(bottom_up=tiny_bottom_up, in_features=["c3", "c4", "res5"])
    neck = _neck(tiny_bottom_up, num_repeats=1)
    # 136 / 8 = 17 but the floor-dividing bottom-up gives c4 = 8, not ceil(17 / 2) = 9
    with pytest.raises(ValueError, match=r"\(136, 128\).*\(17, 16\), \(8, 8\).*multiple of 128"):
        neck(torch.randn(1, 3, 136, 128))


def test_odd_sizes_with_ceil_dividing_resnet():
    """detectron2's ResNet halves sizes rounding up, so any input size lines up."""
    neck = _r18_nasfpn()
    out = neck(torch.randn(1, 3, 136, 200))
    expected = {"p3": (17, 25), "p4": (9, 13), "p5": (5, 7), "p6": (3, 4), "p7": (2, 2)}
    assert {k: tuple(v.shape[-2:]) for k, v in out.items()} == expected


def test_parameter_count_closed_form(tiny_bottom_up):
    """Laterals (1x1, no bias, BN) + 7 cells per repeat (3x3, no bias, BN)."""
    c, r = 48, 2
    neck = _neck(tiny_bottom_up, out_channels=c, num_repeats=r)
    n = sum(p.numel() for n, p in neck.named_parameters() if not n.startswith("bottom_up"))
    laterals = (8 + 12 + 16) * c + 3 * 2 * c
    cells = r * 7 * (9 * c * c + 2 * c)
    assert n == laterals + cells
