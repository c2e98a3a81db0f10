import copy

import pytest
import torch
from torch import nn

from freezedet.engine import AtomicDetectionCheckpointer, build_trainer_parts, load_config
from freezedet.modeling.backbone import (
    FreezableResNet,
    ResidualAdapter,
    TimmBackbone,
    add_residual_adapters,
    with_residual_adapters,
)

TRUNKS = {
    "d2-resnet50": lambda: FreezableResNet.build(depth=50),
    "timm-resnet18": lambda: TimmBackbone(model_name="resnet18"),
    "timm-resnet50": lambda: TimmBackbone(model_name="resnet50"),
    "timm-effl0": lambda: TimmBackbone(model_name="tf_efficientnet_lite0"),
}


def _randomize_bn_stats(module):
    """Non-trivial frozen statistics and scales (timm zero-initialises the last norm of each
    residual branch, which would block every gradient into it), like a trained trunk."""
    g = torch.Generator().manual_seed(0)
    for m in module.modules():
        if hasattr(m, "running_var") and m.running_var is not None:
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)


@pytest.mark.parametrize("kind", ["parallel", "series"])
@pytest.mark.parametrize("trunk", sorted(TRUNKS))
def test_zero_init_equivalence_grads_and_frozen_stats(trunk, kind):
    torch.manual_seed(0)
    backbone = TRUNKS[trunk]()
    _randomize_bn_stats(backbone)
    x = torch.randn(2, 3, 64, 96)
    ref = {k: v.clone() for k, v in backbone(x).items()}
    stats = {k: v.clone() for k, v in backbone.state_dict().items()}
    adapted = with_residual_adapters(backbone, kind=kind)
    assert adapted is backbone and adapted.num_adapters > 0
    adapted.train()
    with torch.no_grad():  # same kernels as the graph-free frozen reference: exact
        exact = adapted(x)
    out = adapted(x)  # with autograd, CPU kernels may round differently
    for k in ref:
        assert out[k].shape == ref[k].shape, f"{k}: stride/shape changed"
        torch.testing.assert_close(exact[k], ref[k], rtol=0, atol=1e-6)
        scale = ref[k].abs().max().item()
        assert (out[k] - ref[k]).abs().max().item() <= 1e-5 * scale, k
    sum(v.square().mean() for v in out.values()).backward()
    for name, p in adapted.named_parameters():
        is_adapter = ".adapter_" in name
        assert p.requires_grad == is_adapter, name
        assert (p.grad is not None) == is_adapter, name
    # every adapter's zero-initialised last conv gets a gradient at step 0
    last = [m.convs[-1].weight for m in adapted.modules() if isinstance(m, ResidualAdapter)]
    assert all(w.grad.abs().sum() > 0 for w in last)
    for _ in range(2):
        adapted(x)
    for k, v in adapted.state_dict().items():
        if k in stats:
            assert torch.equal(v, stats[k]), f"frozen tensor {k} changed"
    adapters = [m for m in adapted.modules() if isinstance(m, ResidualAdapter)]
    assert all(m.training for m in adapters), "adapters train while the trunk stays in eval"
    assert not any(m.training for n, m in adapted.named_modules()
                   if n and ".adapter_" not in n and not n.startswith("adapter")
                   and not any(isinstance(p, ResidualAdapter) for p in m.modules()))


def test_deepcopy_hooks_follow_the_copy():
    plain = TimmBackbone(model_name="resnet18")
    _randomize_bn_stats(plain)
    backbone = with_residual_adapters(copy.deepcopy(plain), kind="parallel")
    twin = copy.deepcopy(backbone)
    with torch.no_grad():
        for m in twin.modules():
            if isinstance(m, ResidualAdapter):
                m.convs[-1].weight.fill_(0.01)
    x = torch.randn(1, 3, 64, 64)
    backbone.eval(), twin.eval()
    a, b = backbone(x)["c5"], twin(x)["c5"]
    assert not torch.allclose(a, b), "the copy's adapters must act in the copy only"
    torch.testing.assert_close(a, plain.eval()(x)["c5"], rtol=1e-5, atol=1e-5)


def test_unknown_block_type_is_a_clear_error():
    trunk = nn.Sequential()
    trunk.add_module("stage", nn.Sequential(nn.Conv2d(3, 3, 3)))
    with pytest.raises(TypeError, match=r"stage\.0: torch\.nn\.modules\.conv\.Conv2d is not a"):
        add_residual_adapters(trunk, stages=["stage"])
    with pytest.raises(TypeError, match="contains no block"):
        add_residual_adapters(nn.Sequential(nn.Conv2d(3, 3, 3)))
    with pytest.raises(KeyError, match="no module 'res9'"):
        add_residual_adapters(FreezableResNet.build(depth=50), stages=["res9"])


def test_stage_selection():
    backbone = with_residual_adapters(FreezableResNet.build(depth=50), stages=["res4", "res5"])
    assert backbone.num_adapters == 6 + 3
    names = [n for n, _ in backbone.named_parameters() if ".adapter_" in n]
    assert names and all(n.startswith(("res4.", "res5.")) for n in names)


def test_adapter_recipe_trains_and_loads_plain_checkpoints(synthetic_dataset, tmp_path):
    name = "DeepForest/faster_rcnn_fpn_effl0_frozen_parallel_adapters.py"
    cfg = load_config(name, [
        f"train.output_dir={tmp_path}", "dataloader.train.dataset.names=synthetic_train",
        "dataloader.train.num_workers=0", "model.roi_heads.batch_size_per_image=32",
        "optimizer.lr=0.002",
    ])
    model, _, trainer = build_trainer_parts(cfg)
    ckpt = AtomicDetectionCheckpointer(model)
    incompatible = ckpt._load_model(ckpt._load_file(load_config(name).train.init_checkpoint.replace(
        "freezedet://", __import__("freezedet").data.paths.data_root() + "/")))
    adapter_keys = {k for k in model.state_dict() if ".adapter_" in k}
    missing_trunk = {k for k in incompatible.missing_keys if k.startswith("backbone.bottom_up.")}
    assert missing_trunk == adapter_keys, missing_trunk ^ adapter_keys
    before = copy.deepcopy(model.state_dict())
    trainer.train(0, 2)
    after = model.state_dict()
    for k in after:
        if k.startswith("backbone.bottom_up."):
            assert torch.equal(after[k], before[k]) != (k in adapter_keys and k.endswith(
                "convs.0.weight")), k
