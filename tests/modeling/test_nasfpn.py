import pytest
import torch

from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import Backbone, build_backbone
from freezedet.modeling.neck import NASFPN, NASFPN_CELLS, add_nasfpn_config


class TinyBottomUp(Backbone):
    """C3-C5 from strided convs: a cheap stand-in bottom-up for neck tests."""

    def __init__(self):
        super().__init__()
        self.c3 = torch.nn.Conv2d(3, 8, 8, stride=8)
        self.c4 = torch.nn.Conv2d(8, 12, 2, stride=2)
        self.c5 = torch.nn.Conv2d(12, 16, 2, stride=2)

    def forward(self, x):
        c3 = self.c3(x)
        c4 = self.c4(c3)
        return {"c3": c3, "c4": c4, "c5": self.c5(c4)}

    def output_shape(self):
        return {
            "c3": ShapeSpec(channels=8, stride=8),
            "c4": ShapeSpec(channels=12, stride=16),
            "c5": ShapeSpec(channels=16, stride=32),
        }


def _neck(**kw):
    args = dict(
        bottom_up=TinyBottomUp(),
        in_features=["c3", "c4", "c5"],
        out_channels=32,
        num_repeats=2,
        norm="BN",
    )
    args.update(kw)
    return NASFPN(**args)


def test_topology_and_output_shape():
    neck = _neck(num_repeats=3)
    assert len(neck.blocks) == 3 and all(len(cells) == 7 for cells in neck.blocks)
    assert [c.level for c in neck.blocks[0]] == [4, 4, 3, 4, 5, 7, 6]
    assert [c.combine for c in neck.blocks[0]] == [cell[1] for cell in NASFPN_CELLS]
    assert sum(cell[3] for cell in NASFPN_CELLS) == 5, "five output cells, one per level"
    shapes = neck.output_shape()
    assert list(shapes) == ["p3", "p4", "p5", "p6", "p7"]
    assert [s.stride for s in shapes.values()] == [8, 16, 32, 64, 128]
    out = neck(torch.randn(2, 3, 256, 384))
    for name, t in out.items():
        s = shapes[name]
        assert tuple(t.shape) == (2, 32, 256 // s.stride, 384 // s.stride), (name, t.shape)
    assert neck.size_divisibility == 128
    assert neck.padding_constraints == {"size_divisibility": 128, "square_size": 0}


def test_gradient_reaches_every_cell_and_lateral():
    neck = _neck()
    out = neck(torch.randn(2, 3, 128, 128))
    sum(t.square().mean() for t in out.values()).backward()
    for name, p in neck.named_parameters():
        if name.endswith("weight") and "bottom_up" not in name:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient in {name}"
    n_cells = sum(1 for n, _ in neck.named_parameters() if n.endswith("conv.weight"))
    assert n_cells == 2 * 7


@pytest.mark.parametrize("norm", ["BN", "GN", "", "FrozenBN", "naiveSyncBN"])
@pytest.mark.parametrize("activation", ["relu", "swish"])
def test_norms_and_activations(norm, activation):
    out = _neck(norm=norm, activation=activation, num_repeats=1)(torch.randn(2, 3, 128, 128))
    assert all(torch.isfinite(t).all() for t in out.values())


def test_attention_cell_is_gated_by_the_coarser_input():
    from freezedet.modeling.neck.nasfpn import _global_attention, _resample

    fine, coarse = torch.randn(1, 32, 8, 8), torch.randn(1, 32, 2, 2)

    up = _resample(coarse, 6, 4, (8, 8))
    expected = up + fine * torch.sigmoid(up.amax(dim=(2, 3), keepdim=True))
    torch.testing.assert_close(_global_attention(up, fine), expected)


def test_bad_inputs_are_clear():
    with pytest.raises(AssertionError, match="strides 8, 16, 32"):
        NASFPN(bottom_up=TinyBottomUp(), in_features=["c4", "c5", "c3"])
    neck = _neck(num_repeats=1)
    with pytest.raises(AssertionError, match="multiple of 128"):
        neck(torch.randn(1, 3, 136, 128))


def test_registry_builder_with_yacs_cfg():
    cfg = get_cfg()
    add_nasfpn_config(cfg)
    cfg.MODEL.BACKBONE.NAME = "build_nasfpn_backbone"
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res3", "res4", "res5"]
    cfg.MODEL.NASFPN.OUT_CHANNELS = 32
    cfg.MODEL.NASFPN.NUM_REPEATS = 1
    neck = build_backbone(cfg)
    assert isinstance(neck, NASFPN)
    out = neck(torch.randn(2, 3, 128, 128))
    assert out["p7"].shape == (2, 32, 1, 1)
