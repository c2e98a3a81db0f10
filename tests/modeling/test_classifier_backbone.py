import pytest
import torch

from detectron2.layers import FrozenBatchNorm2d
from freezedet.modeling.backbone import FreezableResNet, TimmBackbone


def _frozen_norms(module):
    from timm.layers import FrozenBatchNormAct2d

    return [m for m in module.modules() if isinstance(m, (FrozenBatchNorm2d, FrozenBatchNormAct2d))]


def _trainable_bns(module):
    return [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


@pytest.mark.parametrize(
    "build",
    [
        lambda mode: TimmBackbone(
            model_name="tf_efficientnet_lite0",
            mode=mode,
            norm="FrozenBN" if mode != "scratch" else "BN",
        ),
        lambda mode: TimmBackbone(
            model_name="resnet18",
            out_features=("c2", "c3", "c4", "c5"),
            mode=mode,
            norm="FrozenBN" if mode != "scratch" else "BN",
        ),
        lambda mode: FreezableResNet.build(
            depth=50, mode=mode, norm="FrozenBN" if mode != "scratch" else "BN"
        ),
    ],
    ids=["timm-effl0", "timm-resnet18", "d2-resnet50"],
)
@pytest.mark.parametrize("mode", ["frozen", "finetune", "scratch"])
def test_output_shape_matches_outputs_and_modes(build, mode):
    backbone = build(mode)
    x = torch.randn(2, 3, 96, 128)
    out = backbone(x)
    shapes = backbone.output_shape()
    assert set(out) == set(shapes), f"{set(out)} != {set(shapes)}"
    for name, t in out.items():
        s = shapes[name]
        assert t.shape[1] == s.channels, f"{name}: {t.shape[1]} != {s.channels}"
        assert t.shape[2] == -(-96 // s.stride), f"{name}: H {t.shape[2]} for stride {s.stride}"
        assert t.shape[3] == -(-128 // s.stride), f"{name}: W {t.shape[3]} for stride {s.stride}"
    n_trainable = sum(p.requires_grad for p in backbone.parameters())
    assert backbone.size_divisibility == 32
    assert backbone.padding_constraints["size_divisibility"] == 32
    if mode == "frozen":
        assert n_trainable == 0
        assert not any(t.requires_grad for t in out.values()), "frozen trunk built a graph"
        assert _frozen_norms(backbone) and not _trainable_bns(backbone)
        backbone.train()
        assert not any(
            m.training for m in backbone.modules() if m is not backbone
        ), "frozen trunk must stay in eval mode"
    else:
        assert n_trainable == len(list(backbone.parameters()))
        assert all(t.requires_grad for t in out.values())
    if mode == "scratch":
        assert _trainable_bns(backbone) and not _frozen_norms(backbone)


def test_frozen_trunk_keeps_bn_activation():
    """timm's BatchNormAct2d fuses ReLU6: freezing must keep the activation (outputs equal)."""
    torch.manual_seed(0)
    ft = TimmBackbone(model_name="tf_efficientnet_lite0", mode="finetune", norm="BN")
    for m in ft.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    ft.eval()
    x = torch.randn(1, 3, 64, 64)
    ref = ft(x)
    frozen = ft.freeze()
    assert frozen is ft
    out = frozen(x)
    for k in ref:
        # the frozen trunk runs with BN folded into its convs: equal up to float rounding
        torch.testing.assert_close(out[k], ref[k], rtol=1e-4, atol=1e-4)
    assert sum(p.requires_grad for p in frozen.parameters()) == 0


def test_bad_arguments_give_clear_errors():
    with pytest.raises(ValueError, match="unknown timm model name 'not_a_model'"):
        TimmBackbone(model_name="not_a_model")
    with pytest.raises(ValueError, match="norm must be 'FrozenBN'"):
        TimmBackbone(model_name="resnet18", mode="frozen", norm="BN")
    with pytest.raises(ValueError, match="scratch"):
        TimmBackbone(model_name="resnet18", mode="scratch", norm="FrozenBN")
    with pytest.raises(ValueError, match="c6"):
        TimmBackbone(model_name="resnet18", out_features=("c6",))
    with pytest.raises(AssertionError, match="mode='melted'"):
        TimmBackbone(model_name="resnet18", mode="melted")
