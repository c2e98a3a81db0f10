"""The frozen trunk's runtime copy: folded BN, channels_last, inference mode, autocast, compile —
outputs unchanged, checkpoints in the unfolded layout, rebuilt when weights change."""

import copy
import logging
import os

import pytest
import torch

from freezedet.modeling.backbone import FreezableResNet, TimmBackbone, fold_frozen_batchnorm


def _d2_resnet18(**runtime):
    from detectron2.modeling.backbone.resnet import BasicStem, ResNet

    stem = BasicStem(in_channels=3, out_channels=64, norm="FrozenBN")
    stages = ResNet.make_default_stages(depth=18, norm="FrozenBN")
    return FreezableResNet(stem, stages, out_features=["res3", "res4", "res5"], **runtime)


BUILDERS = {
    "timm-effl0": lambda **k: TimmBackbone(model_name="tf_efficientnet_lite0", **k),
    "d2-resnet18": _d2_resnet18,
}


def _randomize(backbone, seed=0):
    """Non-trivial frozen statistics, so that folding has something to fold."""
    g = torch.Generator().manual_seed(seed)
    for name, t in backbone.state_dict().items():
        if name.endswith("running_var"):
            t.copy_(torch.rand(t.shape, generator=g) * 1.5 + 0.5)
        elif name.endswith(("running_mean", "norm.bias", "bn1.bias", "bn2.bias", "bn3.bias")):
            t.copy_(torch.randn(t.shape, generator=g) * 0.2)
    return backbone


def _assert_same(out, ref, tol=1e-4):
    assert set(out) == set(ref)
    for k in ref:
        scale = ref[k].abs().max().item()
        torch.testing.assert_close(out[k] / scale, ref[k] / scale, rtol=tol, atol=tol)


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def pair(request):
    """(unfolded reference, default backbone) with the same random weights."""
    build = BUILDERS[request.param]
    torch.manual_seed(0)
    ref = _randomize(build(fold_bn=False))
    fast = build()
    fast.load_state_dict(ref.state_dict())
    return ref, fast, build


def test_folded_trunk_gives_the_same_outputs_and_keeps_checkpoint_layout(pair, tmp_path):
    ref, fast, build = pair
    x = torch.randn(2, 3, 96, 64)
    expected = ref(x)
    _assert_same(fast(x), expected)
    assert fast.runtime._module._folded_norms > 10, "nothing was folded"
    # the runtime copy is not part of the module: same keys, no extra parameters
    assert list(fast.state_dict()) == list(ref.state_dict())
    assert sum(p.numel() for p in fast.parameters()) == sum(p.numel() for p in ref.parameters())
    # a checkpoint written after folding loads into an unfolded model and reproduces it
    path = os.path.join(tmp_path, "ckpt.pth")
    torch.save(fast.state_dict(), path)
    plain = build(fold_bn=False)
    plain.load_state_dict(torch.load(path))
    _assert_same(plain(x), expected, tol=1e-6)


def test_runtime_is_rebuilt_when_weights_are_loaded(pair):
    ref, fast, build = pair
    x = torch.randn(1, 3, 64, 64)
    fast(x)
    builds = fast.runtime.builds
    fast(x)
    assert fast.runtime.builds == builds, "rebuilt without a change"
    other = _randomize(copy.deepcopy(ref), seed=1)
    fast.load_state_dict(other.state_dict())  # what the checkpointer does after construction
    _assert_same(fast(x), other(x))
    assert fast.runtime.builds == builds + 1
    fast.load_state_dict(ref.state_dict())
    _assert_same(fast(x), ref(x))


@pytest.mark.parametrize(
    "switches", [dict(channels_last=True), dict(inference_mode=True), dict(fold_bn=False)]
)
def test_switches_keep_outputs_and_the_neck_trains(pair, switches):
    ref, _, build = pair
    m = build(**switches)
    m.load_state_dict(ref.state_dict())
    m.train()
    x = torch.randn(2, 3, 64, 96)
    out = m(x)
    _assert_same(out, ref(x))
    assert not any(t.requires_grad for t in out.values()), "frozen trunk built a graph"
    if switches.get("channels_last"):
        assert all(t.is_contiguous() for t in out.values())
    # a neck consuming the outputs saves them for backward: must work in every mode
    f = list(out.values())[-1]
    neck = torch.nn.Conv2d(f.shape[1], 4, 3, padding=1)
    neck(f).square().mean().backward()
    assert neck.weight.grad is not None and neck.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in m.parameters())


def test_autocast_is_cuda_only(caplog):
    m = TimmBackbone(model_name="resnet10t", trunk_autocast="bf16")
    ref = TimmBackbone(model_name="resnet10t", trunk_autocast=None)
    ref.load_state_dict(m.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with caplog.at_level(logging.WARNING):
        out = m(x)
    assert "ignored: CUDA only" in caplog.text
    _assert_same(out, ref(x))
    assert all(t.dtype == torch.float32 for t in out.values())
    with pytest.raises(ValueError, match="trunk autocast='int8'"):
        TimmBackbone(model_name="resnet10t", trunk_autocast="int8")


def test_fold_keeps_timm_activation_and_detectron2_conv_layout():
    from detectron2.layers import Conv2d, FrozenBatchNorm2d
    from timm.layers import FrozenBatchNormAct2d

    bn = FrozenBatchNormAct2d(4, act_layer=torch.nn.ReLU6)
    bn.running_mean.normal_()
    seq = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False), bn)
    d2 = Conv2d(3, 4, 3, bias=False, norm=FrozenBatchNorm2d(4), activation=torch.relu)
    d2.norm.running_var.uniform_(0.5, 2)
    x = torch.randn(1, 3, 8, 8) * 5
    for module in (seq, d2):
        expected = module(x)
        folded = fold_frozen_batchnorm(copy.deepcopy(module))
        assert folded._folded_norms == 1
        assert not any(
            isinstance(m, (FrozenBatchNorm2d, FrozenBatchNormAct2d)) for m in folded.modules()
        )
        torch.testing.assert_close(folded(x), expected, rtol=1e-5, atol=1e-5)
    assert (fold_frozen_batchnorm(copy.deepcopy(seq))(x) <= 6).all(), "ReLU6 must survive"


@pytest.mark.skipif(
    os.environ.get("FREEZEDET_TEST_COMPILE") != "1",
    reason="torch.compile of a trunk takes 13-70 s on this CPU (measured: R50, Lite0, resnet10t "
    "under load); set FREEZEDET_TEST_COMPILE=1 to run",
)
def test_compiled_trunk_runs_on_cpu():
    m = TimmBackbone(model_name="resnet10t", compile=True)
    ref = TimmBackbone(model_name="resnet10t", fold_bn=False)
    ref.load_state_dict(m.state_dict())
    x = torch.randn(1, 3, 64, 64)
    _assert_same(m(x), ref(x))
