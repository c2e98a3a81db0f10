"""The TF reference's heads: RPN head (shared convs, per-level norms), the 4 conv + 2 fc box head
with norms, the P6 conv top block; structure, forward values against a hand-written graph,
registry builders, and a train step inside detectron2's RPN / FPN."""

import pytest
import torch
import torch.nn.functional as F

from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone import FPN
from detectron2.modeling.proposal_generator import build_rpn_head
from detectron2.modeling.roi_heads import build_box_head
from freezedet.modeling.neck import LastLevelP6Conv
from freezedet.modeling.proposal_generator import NormRPNHead
from freezedet.modeling.roi_heads import ConvFCNormHead


def _randomize_norms(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) - 0.5)


@pytest.mark.parametrize("activation", ["relu", "swish"])
def test_box_head_matches_hand_written_graph(activation):
    torch.manual_seed(0)
    head = ConvFCNormHead(
        input_shape=ShapeSpec(channels=8, height=7, width=7),
        conv_dims=[16, 16, 16, 16],
        fc_dims=[32, 32],
        norm="BN",
        activation=activation,
    )
    assert head.output_shape.channels == 32
    assert len(head.convs) == 4 and len(head.fcs) == 2
    assert all(c.bias is None and c.norm is not None for c in head.convs)
    assert all(fc.bias is None for fc in head.fcs)
    _randomize_norms(head)
    head.eval()
    x = torch.randn(5, 8, 7, 7)
    act = F.relu if activation == "relu" else F.silu

    def bn(m, t):
        return (t - m.running_mean) / torch.sqrt(m.running_var + m.eps) * m.weight + m.bias

    y = x
    for conv in head.convs:  # conv -> BN -> act
        y = act(bn(conv.norm, F.conv2d(y, conv.weight, padding=1).permute(0, 2, 3, 1)))
        y = y.permute(0, 3, 1, 2)
    y = y.flatten(1)
    for fc, norm in zip(head.fcs, head.fc_norms):  # fc -> BN -> act
        y = act(bn(norm, y @ fc.weight.t()))
    with torch.no_grad():
        torch.testing.assert_close(head(x), y)
        assert head(torch.zeros(0, 8, 7, 7)).shape == (0, 32)
    # training: BN of the fcs normalises over the RoIs
    head.train()
    out = head(x)
    out.sum().backward()
    assert all(p.grad is not None for p in head.parameters())


def test_box_head_from_yacs_and_plain_variant():
    cfg = get_cfg()
    cfg.MODEL.ROI_BOX_HEAD.NAME = "ConvFCNormHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_CONV, cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 4, 2
    cfg.MODEL.ROI_BOX_HEAD.NORM = "GN"
    head = build_box_head(cfg, ShapeSpec(channels=256, height=7, width=7))
    assert isinstance(head, ConvFCNormHead) and len(head.convs) == 4
    assert isinstance(head.fc_norms[0], torch.nn.GroupNorm)
    plain = ConvFCNormHead(
        input_shape=ShapeSpec(channels=4, height=2, width=2), conv_dims=[], fc_dims=[8], norm=""
    )
    assert plain.fcs[0].bias is not None and isinstance(plain.fc_norms[0], torch.nn.Identity)


def test_rpn_head_shared_convs_per_level_norms():
    torch.manual_seed(0)
    head = NormRPNHead(
        in_channels=8,
        num_anchors=3,
        in_features=["p3", "p4", "p5"],
        conv_dims=[16, 16],
        norm="BN",
        activation="swish",
    )
    assert len(head.convs) == 2 and len(head.norms) == 2
    assert all(len(n) == 3 for n in head.norms)
    assert head.norms[0][0] is not head.norms[0][1]
    _randomize_norms(head)
    head.eval()
    feats = [torch.randn(2, 8, s, s) for s in (16, 8, 4)]
    with torch.no_grad():
        logits, deltas = head(feats)
    for level, (x, lg, dl) in enumerate(zip(feats, logits, deltas)):
        y = x
        for conv, norms in zip(head.convs, head.norms):
            y = F.silu(norms[level](conv(y)))
        torch.testing.assert_close(lg, head.objectness_logits(y))
        torch.testing.assert_close(dl, head.anchor_deltas(y))
        assert lg.shape == (2, 3, x.shape[-1], x.shape[-1]) and dl.shape[1] == 12
    # training: each level's norm sees only its own level's statistics
    head.train()
    head.norms[0][0].reset_running_stats()
    head.norms[0][1].reset_running_stats()
    head([torch.randn(2, 8, 8, 8) + 5, torch.randn(2, 8, 4, 4) - 5, torch.randn(2, 8, 2, 2)])
    assert not torch.allclose(head.norms[0][0].running_mean, head.norms[0][1].running_mean)
    with pytest.raises(AssertionError, match="2 levels != 3"):
        head(feats[:2])


def test_rpn_head_from_yacs():
    cfg = get_cfg()
    cfg.MODEL.RPN.HEAD_NAME = "NormRPNHead"
    cfg.MODEL.RPN.IN_FEATURES = ["p2", "p3"]
    shapes = [ShapeSpec(channels=32, stride=4), ShapeSpec(channels=32, stride=8)]
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64]]
    head = build_rpn_head(cfg, shapes)
    assert isinstance(head, NormRPNHead) and head.num_levels == 2
    assert head.convs[0].out_channels == 32 and head.objectness_logits.out_channels == 3


def test_p6_conv_top_block_under_fpn(tiny_bottom_up):
    torch.manual_seed(0)
    fpn = FPN(
        bottom_up=tiny_bottom_up,
        in_features=["c3", "c4", "c5"],
        out_channels=16,
        norm="BN",
        top_block=LastLevelP6Conv(channels=16, in_feature="p5", norm="BN"),
    ).eval()
    assert list(fpn.output_shape()) == ["p3", "p4", "p5", "p6"]
    assert fpn.output_shape()["p6"].stride == 64
    with torch.no_grad():
        out = fpn(torch.randn(1, 3, 128, 128))
        torch.testing.assert_close(out["p6"], fpn.top_block.p6(out["p5"]))
    assert out["p6"].shape[-2:] == (2, 2)
    assert fpn.top_block.p6.bias is None and fpn.top_block.p6.norm is not None
