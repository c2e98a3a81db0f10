"""Residual adapters in frozen trunks: exact at step 0, only adapters train, checkpoints load."""

import copy
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import instantiate
from detectron2.layers import Conv2d, FrozenBatchNorm2d
from freezedet.engine import argument_parser, load_config, main
from freezedet.model_zoo import get_config_file
from freezedet.modeling.backbone import (
    FreezableResNet,
    ResidualAdapter,
    TimmBackbone,
    add_residual_adapters,
    with_residual_adapters,
)
from freezedet.modeling.backbone.adapters import ParallelAdapter, SeriesAdapter, find_stages

# the plain frozen trunk without its execution switches (BN folding, channels_last): tests compare
# it kernel for kernel with the adapted trunk, which runs as is
PLAIN = dict(fold_bn=False, channels_last=False)
BUILDERS = {
    "d2-resnet50": lambda: FreezableResNet.build(depth=50, **PLAIN),
    "timm-resnet18": lambda: TimmBackbone(model_name="resnet18", **PLAIN),
    "timm-resnet50": lambda: TimmBackbone(model_name="resnet50", **PLAIN),
    "timm-effl0": lambda: TimmBackbone(model_name="tf_efficientnet_lite0", **PLAIN),
}
# adapters with stages=None: one per 3x3 of a bottleneck, two per basic block, one per
# EfficientNet block
EXPECTED_COUNT = {"d2-resnet50": 16, "timm-resnet18": 16, "timm-resnet50": 16, "timm-effl0": 16}
EXPECTED_STAGES = {
    "d2-resnet50": ["res2", "res3", "res4", "res5"],
    "timm-resnet18": ["layer1", "layer2", "layer3", "layer4"],
    "timm-resnet50": ["layer1", "layer2", "layer3", "layer4"],
    "timm-effl0": [f"blocks.{i}" for i in range(7)],
}


def _randomize_bn(module, seed=0):
    """Non-trivial frozen statistics and scales, like a trained trunk (timm zero-initialises the
    last norm scale of each residual branch, which would hide a misplaced adapter)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if getattr(m, "running_var", None) is not None:
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)
    return module


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These small tensors gain nothing from intra-op threads, and lose a lot on a busy CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def plain_trunks():
    """One randomly initialised, frozen backbone per architecture; tests adapt deep copies."""
    torch.manual_seed(0)
    return {name: _randomize_bn(build()) for name, build in BUILDERS.items()}


def _trunk(backbone):
    return backbone._trunk_module()


@pytest.mark.parametrize("kind", ["parallel", "series"])
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_zero_init_equivalence_gradients_and_frozen_state(plain_trunks, name, kind):
    backbone = copy.deepcopy(plain_trunks[name])
    assert find_stages(_trunk(backbone)) == EXPECTED_STAGES[name]
    x = torch.randn(2, 3, 64, 64)
    ref = {k: v.clone() for k, v in backbone(x).items()}
    assert all(not v.requires_grad for v in ref.values()), "plain frozen trunk runs graph-free"
    frozen = {k: v.clone() for k, v in backbone.state_dict().items()}

    adapted = with_residual_adapters(backbone, kind=kind)
    assert adapted is backbone
    assert adapted.num_adapters == EXPECTED_COUNT[name]
    adapters = [m for m in adapted.modules() if isinstance(m, ResidualAdapter)]
    cls = ParallelAdapter if kind == "parallel" else SeriesAdapter
    assert len(adapters) == EXPECTED_COUNT[name] and all(isinstance(a, cls) for a in adapters)

    adapted.train()
    with torch.no_grad():  # the same kernels as the frozen reference: exact
        exact = adapted(x)
    out = adapted(x)  # with autograd, detectron2's FrozenBN takes another (rounding) path
    assert set(out) == set(ref)
    for k in ref:
        assert out[k].shape == ref[k].shape, f"{k}: stride / shape changed"
        torch.testing.assert_close(exact[k], ref[k], rtol=0, atol=1e-6)
        scale = ref[k].abs().max().item()
        torch.testing.assert_close(out[k], ref[k], rtol=0, atol=1e-5 * scale)
        assert out[k].requires_grad, f"{k}: adapters need the trunk's graph"

    sum(v.square().mean() for v in out.values()).backward()
    for pname, p in adapted.named_parameters():
        is_adapter = ".adapter_" in pname
        assert p.requires_grad == is_adapter, pname
        assert (p.grad is not None) == is_adapter, pname
    # every adapter's zero-initialised last conv gets a gradient at step 0, the first included
    assert all(a.convs[-1].weight.grad.abs().sum() > 0 for a in adapters)

    for _ in range(2):
        adapted(x)
    for k, v in adapted.state_dict().items():
        if ".adapter_" not in k:
            assert torch.equal(v, frozen[k]), f"frozen tensor {k} changed"
    for mname, m in _trunk(adapted).named_modules():
        assert m.training == (".adapter_" in mname or mname.startswith("adapter_")), mname
    adapted.eval()
    assert not any(a.training for a in adapters)


def _site_conv(kind_of_conv, k, channels, groups):
    if kind_of_conv == "same":  # TensorFlow SAME padding: stride-2 windows centred off-grid
        from timm.layers import Conv2dSame

        return Conv2dSame(channels, channels, k, stride=2, groups=groups, bias=False)
    return nn.Conv2d(channels, channels, k, stride=2, padding=k // 2, groups=groups, bias=False)


@pytest.mark.parametrize("size", [16, 17])
@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("padding", ["same", "symmetric"])
@pytest.mark.parametrize("depthwise", ["channelwise", "full"])
def test_parallel_adapter_samples_window_centres(depthwise, padding, k, size):
    """A frozen conv reduced to its centre tap and an adapter holding the same weights must give
    the same output: the adapter sees the centre pixel of every window."""
    torch.manual_seed(0)
    c = 4
    conv = _site_conv(padding, k, c, groups=c)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, :, k // 2, k // 2] = torch.rand(c, 1) + 0.5
    adapter = ParallelAdapter(conv=conv, depthwise=depthwise)
    centre = conv.weight[:, 0, k // 2, k // 2].detach()
    with torch.no_grad():
        w = centre if depthwise == "channelwise" else torch.diag(centre)
        adapter.convs[0].weight.copy_(w.reshape(adapter.convs[0].weight.shape))
    expected_params = c if depthwise == "channelwise" else c * c
    assert sum(p.numel() for p in adapter.parameters()) == expected_params
    x = torch.randn(1, c, size, size)
    with torch.no_grad():
        frozen = conv(x)
        conv.register_forward_hook(adapter.hook)
        adapted = conv(x)
    assert adapted.shape == frozen.shape == (1, c, (size + 1) // 2, (size + 1) // 2)
    torch.testing.assert_close(adapted, 2 * frozen)


def test_parallel_adapter_is_added_before_detectron2_frozen_norm():
    torch.manual_seed(0)
    norm = _randomize_bn(FrozenBatchNorm2d(8), seed=1)
    conv = Conv2d(4, 8, 3, stride=2, padding=1, bias=False, norm=norm)
    adapter = ParallelAdapter(conv=conv)
    with torch.no_grad():
        adapter.convs[0].weight.normal_()
    conv.register_forward_hook(adapter.hook)
    x = torch.randn(2, 4, 9, 9)
    expected = norm(F.conv2d(x, conv.weight, stride=2, padding=1) + adapter.convs(x))
    torch.testing.assert_close(conv(x), expected)


def test_series_options_reduction_and_group_norm(plain_trunks):
    backbone = copy.deepcopy(plain_trunks["timm-resnet18"])
    x = torch.randn(1, 3, 64, 64)
    ref = backbone(x)
    with_residual_adapters(backbone, kind="series", stages=["layer4"], norm="GN", reduction=4)
    adapters = [m for m in backbone.modules() if isinstance(m, ResidualAdapter)]
    assert len(adapters) == 4
    # layer4's two basic blocks: two 3x3 convs of 512 channels each: GN(32 groups) + 512->128->512
    assert [type(a.norm).__name__ for a in adapters] == ["GroupNorm"] * 4
    assert sum(p.numel() for p in adapters[0].parameters()) == 2 * 512 + 2 * 512 * 128
    with torch.no_grad():
        exact = backbone(x)
    for k in ref:
        torch.testing.assert_close(exact[k], ref[k], rtol=0, atol=1e-6)
    backbone(x)["c5"].sum().backward()
    assert all(a.convs[-1].weight.grad.abs().sum() > 0 for a in adapters)


def test_stage_selection_by_name_and_index(plain_trunks):
    by_name = with_residual_adapters(
        copy.deepcopy(plain_trunks["d2-resnet50"]), stages=["res4", "res5"]
    )
    assert by_name.num_adapters == 6 + 3
    names = [n for n, _ in by_name.named_parameters() if ".adapter_" in n]
    assert names and all(n.startswith(("res4.", "res5.")) for n in names)
    by_index = with_residual_adapters(copy.deepcopy(plain_trunks["timm-effl0"]), stages=[-2, -1])
    names = {n.split(".adapter_")[0] for n, _ in by_index.named_parameters() if ".adapter_" in n}
    assert names == {"trunk.blocks.5.0", "trunk.blocks.5.1", "trunk.blocks.5.2"} | {
        "trunk.blocks.5.3",
        "trunk.blocks.6.0",
    }


def test_bad_input_is_a_clear_error(plain_trunks):
    trunk = nn.Sequential()
    trunk.add_module("stage", nn.Sequential(nn.Conv2d(3, 3, 1), nn.Sequential(nn.Conv2d(3, 3, 1))))
    trunk.add_module("blocks", nn.Sequential(nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU())))
    with pytest.raises(TypeError, match=r"blocks\.0: torch\.nn\.modules\.container\.Sequential is"):
        add_residual_adapters(trunk, stages=["blocks"])
    with pytest.raises(TypeError, match=r"has no stage of blocks"):
        add_residual_adapters(nn.Sequential(nn.Conv2d(3, 3, 3)))
    resnet = copy.deepcopy(plain_trunks["d2-resnet50"])
    with pytest.raises(KeyError, match=r"no module 'res9'; its stages are \['res2'"):
        add_residual_adapters(resnet, stages=["res9"])
    with pytest.raises(IndexError, match="stage index 4"):
        add_residual_adapters(resnet, stages=[4])
    with pytest.raises(ValueError, match="kind='both'"):
        add_residual_adapters(resnet, kind="both")
    with pytest.raises(ValueError, match="series adapters only"):
        add_residual_adapters(resnet, kind="parallel", reduction=4)
    with_residual_adapters(resnet, stages=["res5"])
    with pytest.raises(ValueError, match=r"res5\.0 already has residual adapters"):
        with_residual_adapters(resnet, stages=["res5"])
    # beside a detectron2 conv with a trainable norm, "added before the norm" has no closed form
    finetuned = FreezableResNet.build(depth=50, mode="finetune", norm="BN", out_features=["res5"])
    with pytest.raises(ValueError, match=r"res2\.0\.conv2 applies a trainable norm.*'series'"):
        with_residual_adapters(finetuned)
    with pytest.raises(TypeError, match="needs a freezedet classifier backbone"):
        with_residual_adapters(nn.Sequential())


@pytest.mark.parametrize(
    "name, kind",
    [("timm-resnet18", "parallel"), ("d2-resnet50", "series"), ("timm-resnet18", "series")],
)
def test_finetuned_trunk_trains_with_its_adapters(name, kind):
    """Fine-tuning + adapters ("Proper Reuse" Sec. 5): trunk and adapters train together, with
    trainable BN; zero-initialised adapters leave the fine-tuned trunk's output unchanged."""
    torch.manual_seed(0)
    if name.startswith("timm"):
        plain = TimmBackbone(model_name="resnet18", mode="finetune", norm="BN")
    else:
        plain = FreezableResNet.build(
            depth=50, mode="finetune", norm="BN", out_features=["res4", "res5"]
        )
    _randomize_bn(plain)
    adapted = with_residual_adapters(copy.deepcopy(plain), kind=kind)
    assert adapted.num_adapters > 0 and not adapted.is_frozen
    x = torch.randn(2, 3, 64, 64)
    for m in (plain, adapted):
        m.eval()
    with torch.no_grad():
        for k, v in plain(x).items():
            torch.testing.assert_close(adapted(x)[k], v, msg=k)
    adapted.train()
    assert all(m.training for n, m in adapted.named_modules() if ".adapter_" in n)
    out = adapted(x)
    sum(o.square().mean() for o in out.values()).backward()
    trunk = [p for n, p in adapted.named_parameters() if ".adapter_" not in n]
    adapters = [p for n, p in adapted.named_parameters() if ".adapter_" in n]
    assert all(p.requires_grad for p in trunk + adapters)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trunk[:3]), "stem"
    # the zero-initialised last conv of every adapter gets a gradient
    last = [m.convs[-1].weight for m in adapted.modules() if isinstance(m, ResidualAdapter)]
    assert last and all(w.grad is not None and w.grad.abs().sum() > 0 for w in last)


def test_unsupported_block_inside_a_real_trunk_is_named():
    """EfficientNetV2's fused-MBConv blocks have no adapter sites: the error names path and class,
    and choosing stages without them works."""
    backbone = TimmBackbone(model_name="tf_efficientnetv2_b0")
    with pytest.raises(
        TypeError, match=r"blocks\.0\.0: timm\.models\._efficientnet_blocks\.\w+ is not a supported"
    ):
        with_residual_adapters(backbone)
    assert with_residual_adapters(backbone, stages=["blocks.5"]).num_adapters > 0


def test_checkpoints_plain_to_adapted_and_back(plain_trunks, tmp_path):
    for kind in ("parallel", "series"):
        plain = copy.deepcopy(plain_trunks["timm-effl0"])
        DetectionCheckpointer(plain, str(tmp_path)).save(f"plain_{kind}")
        adapted = with_residual_adapters(copy.deepcopy(plain_trunks["timm-effl0"]), kind=kind)
        _randomize_bn(adapted, seed=5)  # loading must restore the frozen tensors
        ckpt = DetectionCheckpointer(adapted)
        incompatible = ckpt._load_model(ckpt._load_file(str(tmp_path / f"plain_{kind}.pth")))
        # detectron2 never reports BN's num_batches_tracked as missing
        adapter_keys = {
            k
            for k in adapted.state_dict()
            if ".adapter_" in k and not k.endswith("num_batches_tracked")
        }
        assert set(incompatible.missing_keys) == adapter_keys and adapter_keys
        assert not incompatible.unexpected_keys
        if kind == "series":  # the adapters' own BN statistics are new too
            assert any(k.endswith("norm.running_mean") for k in adapter_keys)
        x = torch.randn(1, 3, 64, 64)
        plain.eval(), adapted.eval()
        with torch.no_grad():
            torch.testing.assert_close(adapted(x)["c5"], plain(x)["c5"], rtol=0, atol=1e-6)

        # an adapted checkpoint round-trips its adapters; a plain model sees them as unexpected
        with torch.no_grad():
            for a in adapted.modules():
                if isinstance(a, ResidualAdapter):
                    a.convs[-1].weight.normal_()
        DetectionCheckpointer(adapted, str(tmp_path)).save(f"adapted_{kind}")
        again = with_residual_adapters(copy.deepcopy(plain_trunks["timm-effl0"]), kind=kind)
        ckpt = DetectionCheckpointer(again)
        incompatible = ckpt._load_model(ckpt._load_file(str(tmp_path / f"adapted_{kind}.pth")))
        assert not incompatible.missing_keys and not incompatible.unexpected_keys
        again.eval()
        with torch.no_grad():
            torch.testing.assert_close(again(x)["c5"], adapted(x)["c5"], rtol=0, atol=0)
        ckpt = DetectionCheckpointer(copy.deepcopy(plain_trunks["timm-effl0"]))
        incompatible = ckpt._load_model(ckpt._load_file(str(tmp_path / f"adapted_{kind}.pth")))
        assert set(incompatible.unexpected_keys) >= adapter_keys


def test_deepcopy_hooks_follow_the_copy(plain_trunks):
    plain = plain_trunks["timm-resnet18"]
    backbone = with_residual_adapters(copy.deepcopy(plain), kind="parallel")
    twin = copy.deepcopy(backbone)
    with torch.no_grad():
        for m in twin.modules():
            if isinstance(m, ResidualAdapter):
                m.convs[-1].weight.fill_(0.01)
    x = torch.randn(1, 3, 64, 64)
    backbone.eval(), twin.eval()
    with torch.no_grad():
        a, b = backbone(x)["c5"], twin(x)["c5"]
        assert not torch.allclose(a, b), "the copy's adapters must act in the copy only"
        torch.testing.assert_close(a, plain.eval()(x)["c5"], rtol=0, atol=1e-6)


def _saved_tensor_bytes(fn):
    """Bytes of distinct tensors autograd keeps for backward while ``fn`` runs."""
    seen = {}

    def pack(t):
        seen[(t.untyped_storage().data_ptr(), t.dtype)] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(seen.values()), out


def test_what_autograd_keeps_for_the_adapters(plain_trunks):
    """PyTorch convs save their input even when their weight is frozen, and ReLUs their output:
    from the first adapter on, the trunk keeps about what fine-tuning keeps. Adapting only the
    last stages keeps the early, high-resolution layers graph-free."""
    x = torch.randn(2, 3, 128, 128)
    frozen = copy.deepcopy(plain_trunks["timm-effl0"]).train()
    models = {
        "frozen": frozen,
        "all": with_residual_adapters(copy.deepcopy(frozen), kind="parallel"),
        "last2": with_residual_adapters(copy.deepcopy(frozen), kind="parallel", stages=[-2, -1]),
        "finetune": TimmBackbone(model_name="tf_efficientnet_lite0", mode="finetune").train(),
    }
    sizes = {name: _saved_tensor_bytes(lambda m=m: m(x))[0] for name, m in models.items()}
    assert sizes["frozen"] == 0
    assert 0.8 * sizes["finetune"] < sizes["all"] < 1.2 * sizes["finetune"], sizes
    assert 0 < sizes["last2"] < 0.35 * sizes["finetune"], sizes


def test_adapter_recipe_trains_from_a_plain_frozen_checkpoint(synthetic_run_opts, tmp_path):
    """tools/train_net.py in-process: the adapter recipe starts from a plain frozen detector's
    checkpoint; 2 iterations move the adapters and nothing else in the trunk."""
    plain_cfg = load_config(get_config_file("DeepForest/faster_rcnn_fpn.py"))
    plain = instantiate(plain_cfg.model)
    _randomize_bn(plain.backbone.bottom_up)
    DetectionCheckpointer(plain, str(tmp_path)).save("plain")
    plain_state = plain.state_dict()

    out = str(tmp_path / "run")
    config = get_config_file("DeepForest/faster_rcnn_fpn_effl0_frozen_parallel_adapters.py")
    opts = [
        f"train.init_checkpoint={tmp_path / 'plain.pth'}",
        f"train.output_dir={out}",
        "train.max_iter=2",
        "train.seed=0",
        *synthetic_run_opts,
        "optimizer.lr=0.02",
    ]
    main(argument_parser().parse_args(["--config-file", config, *opts]))
    trained = torch.load(os.path.join(out, "model_final.pth"), weights_only=False)["model"]
    trunk_keys = [k for k in trained if k.startswith("backbone.bottom_up.")]
    adapter_keys = [k for k in trunk_keys if ".adapter_" in k]
    last_convs = [k for k in adapter_keys if k.endswith(".convs.0.weight")]
    assert len(last_convs) == 16, last_convs
    for k in last_convs:
        assert trained[k].abs().sum() > 0, f"{k} did not train"
    for k in set(trunk_keys) - set(adapter_keys):
        assert torch.equal(trained[k], plain_state[k]), f"frozen {k} changed"
    assert set(trained) == set(plain_state) | set(adapter_keys)
