"""PlainNeck: output_shape contract, depth = parameter count, top-down merge, frozen trunk."""

import pytest
import torch
from torch import nn

from freezedet.modeling.neck import PlainNeck


def _neck(bottom_up, **kw):
    args = dict(bottom_up=bottom_up, in_features=["c3", "c4", "c5"], out_channels=16)
    args.update(kw)
    return PlainNeck(**args)


@pytest.mark.parametrize("num_layers", [1, 2, 4])
def test_output_shape_contract(num_layers, tiny_bottom_up):
    neck = _neck(tiny_bottom_up, num_layers=num_layers).eval()
    out = neck(torch.randn(2, 3, 128, 96))
    shapes = neck.output_shape()
    assert list(out) == list(shapes) == ["p3", "p4", "p5", "p6"]
    for name, t in out.items():
        s = shapes[name].stride
        # P6 (stride-2 pooling of P5) rounds up, like FPN's LastLevelMaxPool
        assert tuple(t.shape) == (2, shapes[name].channels, -(-128 // s), -(-96 // s)), name
    assert neck.size_divisibility == 32
    assert neck.padding_constraints["size_divisibility"] == 32
    # per level: num_layers convs of 16 -> 16 (3x3, BN, no bias) + BN
    per_layer = 16 * 16 * 9 + 2 * 16
    stacked = sum(p.numel() for p in neck.stacks.parameters())
    assert stacked == 3 * num_layers * per_layer
    assert all(len(s) == num_layers for s in neck.stacks)


def test_top_down_merge_and_stacked_layers_by_hand(tiny_bottom_up):
    """One level computed by hand: p4 = stack(lateral4(c4) + up2(lateral5(c5)))."""
    neck = _neck(tiny_bottom_up, num_layers=2, norm="", activation="relu").eval()
    x = torch.randn(1, 3, 64, 64)
    feats = neck.bottom_up(x)
    with torch.no_grad():
        out = neck(x)
        l5 = neck.laterals[2](feats["c5"])
        l4 = neck.laterals[1](feats["c4"]) + torch.repeat_interleave(
            torch.repeat_interleave(l5, 2, dim=2), 2, dim=3
        )
        p4 = l4
        for conv in neck.stacks[1]:
            p4 = torch.relu(nn.functional.conv2d(p4, conv.weight, conv.bias, padding=1))
        p5 = l5
        for conv in neck.stacks[2]:
            p5 = torch.relu(nn.functional.conv2d(p5, conv.weight, conv.bias, padding=1))
    assert torch.allclose(out["p4"], p4, atol=1e-6)
    assert torch.allclose(out["p6"], p5[..., ::2, ::2], atol=1e-6)
    assert (out["p3"] >= 0).all()  # ends in the activation


def test_frozen_trunk_gets_no_gradient_neck_does(tiny_bottom_up):
    neck = _neck(tiny_bottom_up, num_layers=2)
    for p in neck.bottom_up.parameters():
        p.requires_grad_(False)
    sum(v.sum() for v in neck(torch.randn(2, 3, 64, 64)).values()).backward()
    assert all(p.grad is None for p in neck.bottom_up.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in neck.stacks.parameters())


def test_bad_inputs_are_named(tiny_bottom_up):
    with pytest.raises(AssertionError, match="num_layers=0"):
        _neck(tiny_bottom_up, num_layers=0)
    with pytest.raises(AssertionError, match=r"strides \[8, 16\]"):
        _neck(tiny_bottom_up, in_features=["c3", "c4"])
    with pytest.raises(ValueError, match="multiple of 32"):
        _neck(tiny_bottom_up)(torch.randn(1, 3, 72, 64))
