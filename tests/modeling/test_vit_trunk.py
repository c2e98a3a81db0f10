"""Plain ViT and ConvNeXt trunks: the output_shape contract at sizes the patch does not divide,
frozen trunks untouched by a training step, local weights files loaded as timm loads them, and
zero-initialised transformer adapters. Tiny models (2 ViT blocks), random weights."""

import math
import os

import pytest
import torch
from torch import nn

from detectron2.modeling.backbone import FPN
from detectron2.modeling.backbone.fpn import LastLevelMaxPool
from freezedet.modeling.backbone import (
    FeatureCache,
    MLPAdapter,
    TimmBackbone,
    ViTBackbone,
    add_residual_adapters,
    with_residual_adapters,
)

LEVELS = ["c2", "c3", "c4", "c5"]
DINO = "vit_small_patch14_dinov2"


def _vit(model_name=DINO, depth=2, **kw):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return ViTBackbone(model_name=model_name, timm_kwargs=dict(depth=depth), **kw)


def _check_contract(backbone, out, h, w):
    shapes = backbone.output_shape()
    assert list(out) == list(shapes) == backbone._out_features, f"{list(out)} != {list(shapes)}"
    for name, t in out.items():
        s = shapes[name]
        assert s.stride == 2 ** int(name[1:]), f"{name}: stride {s.stride}"
        expected = (t.shape[0], s.channels, math.ceil(h / s.stride), math.ceil(w / s.stride))
        assert tuple(t.shape) == expected, f"{name}: {tuple(t.shape)} != {expected}"


@pytest.mark.parametrize(
    "model_name,pyramid",
    [
        (DINO, "last"),
        (DINO, "taps"),
        ("vit_base_patch16_clip_224", "last"),
        ("eva02_tiny_patch14_224", "last"),
    ],
    ids=["dinov2-s14", "dinov2-s14-taps", "clip-b16", "eva02-t14"],
)
@pytest.mark.parametrize("size", [(100, 130), (71, 57)])
def test_vit_output_shape_contract_at_sizes_the_patch_does_not_divide(model_name, pyramid, size):
    backbone = _vit(
        model_name, depth=4 if pyramid == "taps" else 2, pyramid=pyramid, out_features=LEVELS
    )
    h, w = size
    out = backbone(torch.randn(2, 3, h, w))
    _check_contract(backbone, out, h, w)
    dim = backbone.trunk.vit.embed_dim
    assert [backbone.output_shape()[f].channels for f in LEVELS] == [dim // 4, dim // 2, dim, dim]
    assert backbone.size_divisibility == 32
    if pyramid == "taps":
        assert backbone.trunk.indices == [0, 1, 2, 3]


def test_windowed_attention_trunk_keeps_its_own_attention_and_width():
    """timm's SAM ViT: windowed attention with global blocks, its own position-embedding
    resampling (dynamic_img_size=None) and a conv neck to 256 channels as its final norm."""
    backbone = ViTBackbone(
        model_name="samvit_base_patch16",
        out_features=LEVELS,
        dynamic_img_size=None,
        timm_kwargs=dict(depth=2, global_attn_indexes=(1,), window_size=4, img_size=256),
    )
    out = backbone(torch.randn(1, 3, 100, 130))
    _check_contract(backbone, out, 100, 130)
    assert backbone.output_shape()["c4"].channels == 256
    assert backbone.trunk.vit.blocks[0].window_size == 4
    assert backbone.trunk.vit.blocks[1].window_size == 0  # global


class _CentreMap(nn.Module):
    """Stands in for a patch-14 ViT: each cell holds the x pixel coordinate of its centre."""

    def __init__(self):
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.patch_size = (14, 14)

    def forward_intermediates(self, x, indices, norm, output_fmt, intermediates_only):
        assert x.shape[-1] % 14 == 0 and x.shape[-2] % 14 == 0, x.shape
        gw = x.shape[-1] // 14
        centres = 14 * torch.arange(gw, dtype=torch.float32) + 7
        return [centres.expand(1, 1, x.shape[-2] // 14, gw)]


@pytest.mark.parametrize("width", [130, 518, 64])
def test_patch14_maps_are_resampled_pixel_aligned_to_stride16_cells(width):
    from freezedet.modeling.backbone.vit import _ViTTaps

    maps = _ViTTaps(_CentreMap(), [0], final_norm=True)(torch.zeros(1, 3, 100, width))
    cells = math.ceil(width / 16)
    assert maps[0].shape == (1, 1, 7, cells), maps[0].shape
    # bilinear resampling keeps a linear function: cell j of stride 16 is centred at 16 j + 8
    expected = 16 * torch.arange(cells, dtype=torch.float32) + 8
    torch.testing.assert_close(maps[0][0, 0, 0], expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("mode", ["frozen", "finetune", "scratch"])
def test_convnext_modes_and_output_shape(mode):
    backbone = TimmBackbone(
        model_name="convnext_atto",
        out_features=LEVELS,
        mode=mode,
        norm="BN" if mode == "scratch" else "FrozenBN",
    )
    # the detector pads to size_divisibility (ImageList): 100 x 130 -> 128 x 160
    h, w = 128, 160
    out = backbone(torch.randn(1, 3, h, w))
    _check_contract(backbone, out, h, w)
    trainable = sum(p.requires_grad for p in backbone.parameters())
    if mode == "frozen":
        assert trainable == 0 and not any(t.requires_grad for t in out.values())
        backbone.train()
        assert not backbone.trunk.training, "frozen trunk must stay in eval mode"
    else:
        assert trainable == len(list(backbone.parameters()))
        assert all(t.requires_grad for t in out.values())


def _fpn(bottom_up):
    return FPN(
        bottom_up=bottom_up,
        in_features=bottom_up._out_features,
        out_channels=32,
        top_block=LastLevelMaxPool(),
    )


def _train_step(neck, x):
    neck.train()
    opt = torch.optim.SGD([p for p in neck.parameters() if p.requires_grad], lr=0.1)
    loss = sum(o.pow(2).mean() for o in neck(x).values())
    loss.backward()
    opt.step()
    return loss


@pytest.mark.parametrize(
    "build",
    [
        lambda mode: _vit(out_features=LEVELS, mode=mode),
        lambda mode: TimmBackbone(model_name="convnext_atto", out_features=LEVELS, mode=mode),
    ],
    ids=["vit", "convnext"],
)
@pytest.mark.parametrize("mode", ["frozen", "finetune"])
def test_frozen_trunk_gets_no_gradient_and_does_not_change(build, mode):
    backbone = build(mode)
    trunk = backbone._trunk_module()
    neck = _fpn(backbone)
    x = torch.randn(2, 3, 64, 96)
    before = [t.detach().clone() for t in backbone._run_trunk(x)]
    state = {k: v.clone() for k, v in trunk.state_dict().items()}
    _train_step(neck, x)
    grads = [p.grad for p in trunk.parameters()]
    neck.eval()
    after = backbone._run_trunk(x)
    changed = [k for k, v in trunk.state_dict().items() if not torch.equal(v, state[k])]
    if mode == "frozen":
        assert all(g is None for g in grads), "frozen trunk received gradients"
        assert not changed, f"frozen trunk changed: {changed[:3]}"
        assert all(torch.equal(a, b) for a, b in zip(before, after))
        if isinstance(backbone, ViTBackbone):  # the pyramid trains with the neck
            assert backbone.pyramid["c2"][0].weight.grad is not None
    else:
        assert any(g is not None and g.abs().sum() > 0 for g in grads)
        assert changed and not all(torch.equal(a, b) for a, b in zip(before, after))


@pytest.mark.parametrize("switch", [dict(inference_mode=True), dict(channels_last=True)])
def test_frozen_vit_switches_keep_outputs(switch):
    x = torch.randn(1, 3, 60, 90)
    ref = _vit(out_features=LEVELS)(x)
    out = _vit(out_features=LEVELS, **switch)(x)
    for k in ref:
        torch.testing.assert_close(out[k], ref[k], rtol=1e-5, atol=1e-5)


def test_frozen_vit_with_feature_cache_runs_the_trunk_once_per_input():
    backbone = _vit(feature_cache=FeatureCache(budget_mb=64))
    x = torch.randn(2, 3, 64, 64)
    first = backbone(x)
    second = backbone(x)
    assert backbone.trunk_calls == 1, backbone.trunk_calls
    assert all(torch.equal(first[k], second[k]) for k in first)


def _save(state, path):
    if path.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, path)
    else:
        torch.save(state, path)


@pytest.mark.parametrize("fmt", [".pth", ".safetensors", "overlay"])
def test_vit_weights_from_a_local_file_match_timm_loading(fmt, tmp_path):
    import timm

    torch.manual_seed(1)
    src = timm.create_model(DINO, pretrained=False, depth=2, img_size=224)
    path = str(tmp_path / ("w.safetensors" if fmt == ".safetensors" else "w.pth"))
    state = dict(src.state_dict())
    state["mask_token"] = torch.zeros(1, src.embed_dim)  # DINOv2's original layout has one
    _save(state, path)
    kw = dict(weights=path) if fmt != "overlay" else {}
    timm_kwargs = dict(depth=2)
    if fmt == "overlay":
        timm_kwargs["pretrained_cfg_overlay"] = dict(file=path)
    backbone = ViTBackbone(model_name=DINO, out_features=["c4"], timm_kwargs=timm_kwargs, **kw)
    report = backbone.weights_report
    n = len(backbone.trunk.vit.state_dict())
    assert (len(report.matched), len(report.missing), len(report.unexpected)) == (
        n,
        0,
        0,
    ), report.summary()
    # timm's own loader, position embeddings resampled from 16 x 16 to the 518 px grid
    ref = timm.create_model(
        DINO,
        pretrained=True,
        pretrained_cfg_overlay=dict(file=path),
        depth=2,
        num_classes=0,
        dynamic_img_size=True,
    ).eval()
    assert ref.pos_embed.shape == backbone.trunk.vit.pos_embed.shape != src.pos_embed.shape
    x = torch.randn(1, 3, 112, 112)  # 8 x 8 patches of 14: no padding, no resampling to 16
    with torch.no_grad():
        expected = ref.forward_intermediates(x, indices=[1], norm=True, intermediates_only=True)
    got = backbone.trunk.vit.forward_intermediates(
        x, indices=[1], norm=True, intermediates_only=True
    )
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=0)


def test_weights_report_counts_and_shape_mismatch_error(tmp_path):
    import timm

    path = str(tmp_path / "clip.safetensors")
    src = timm.create_model("vit_base_patch16_clip_224", pretrained=False, depth=1, num_classes=7)
    _save(src.state_dict(), path)
    backbone = ViTBackbone(
        model_name="vit_base_patch16_clip_224", weights=path, timm_kwargs=dict(depth=2)
    )
    r = backbone.weights_report
    assert sorted(r.unexpected) == ["head.bias", "head.weight"], r.summary()
    assert r.missing and all(k.startswith("blocks.1.") for k in r.missing), r.summary()
    with pytest.raises(ValueError, match="shape mismatches"):
        ViTBackbone(model_name=DINO, weights=path, timm_kwargs=dict(depth=1))


def test_convnext_weights_from_a_local_file_match_timm_loading(tmp_path):
    import timm

    torch.manual_seed(2)
    src = timm.create_model("convnext_atto", pretrained=False)
    path = str(tmp_path / "convnext.safetensors")
    _save(src.state_dict(), path)
    backbone = TimmBackbone(model_name="convnext_atto", out_features=LEVELS, weights=path)
    r = backbone.weights_report
    assert not r.missing and len(r.matched) == len(backbone.trunk.state_dict()), r.summary()
    assert all(k.startswith("head.") for k in r.unexpected), r.summary()
    ref = timm.create_model(
        "convnext_atto", pretrained=True, pretrained_cfg_overlay=dict(file=path), features_only=True
    ).eval()
    x = torch.randn(1, 3, 64, 64)
    out = backbone(x)
    with torch.no_grad():
        expected = ref(x)
    for f, e in zip(LEVELS, expected):
        torch.testing.assert_close(out[f], e, rtol=0, atol=0)


def test_transformer_adapters_start_at_the_frozen_trunk_and_train_alone():
    x = torch.randn(2, 3, 64, 96)
    plain = _vit(out_features=LEVELS)
    ref = plain(x)
    adapted = with_residual_adapters(_vit(out_features=LEVELS), kind="parallel", bottleneck=8)
    adapters = [m for m in adapted.modules() if isinstance(m, MLPAdapter)]
    assert adapted.num_adapters == len(adapters) == 2
    out = adapted(x)
    for k in ref:
        torch.testing.assert_close(out[k], ref[k], rtol=0, atol=0)
    _train_step(_fpn(adapted), x)
    vit_grads = [n for n, p in adapted.trunk.named_parameters() if p.grad is not None]
    assert vit_grads and all(".adapter_mlp." in n for n in vit_grads), vit_grads[:3]
    assert all(a.up.weight.grad.abs().sum() > 0 for a in adapters)
    assert adapted.training and adapters[0].training and not adapted.trunk.vit.training
    out = adapted(x)
    # DINOv2's layer scale starts at 1e-5: inside it, the step moved c4 by <= 1.2e-7 (0 in 8 of 20
    # seeds); outside it, as AdaptFormer adds the adapter, by 0.10-0.17 (seeds 0-7)
    change = (out["c4"] - ref["c4"]).abs().max()
    assert change > 1e-2, f"the adapters' step moved c4 by {change:.3g} only"


@pytest.mark.parametrize(
    "model_name,timm_kwargs",
    [
        (DINO, {}),
        ("eva02_tiny_patch14_224", dict(init_values=1e-5)),
        ("vit_base_patch16_clip_224", {}),
    ],
    ids=["dinov2-layerscale", "eva02-gamma", "clip-no-layerscale"],
)
def test_transformer_adapter_output_reaches_the_residual_stream_unscaled(model_name, timm_kwargs):
    """AdaptFormer: block(x) = frozen block(x) + adapter(norm2(x')), whatever layer scale the
    block applies to its MLP's output (DINOv2's LayerScale, EVA's gamma_2, none for CLIP); a deep
    copy (an EMA model) runs its own adapter."""
    import copy

    import timm

    torch.manual_seed(0)
    vit = timm.create_model(model_name, pretrained=False, depth=1, **timm_kwargs).eval()
    block = vit.blocks[0]
    tokens = torch.randn(2, 5, vit.embed_dim)
    with torch.no_grad():
        ref = block(tokens)
        assert add_residual_adapters(vit, stages=["blocks"], bottleneck=4) == 1
        adapter = block.adapter_mlp
        torch.testing.assert_close(block(tokens), ref, rtol=0, atol=0)
        nn.init.normal_(adapter.up.weight)
        ema = copy.deepcopy(vit)
        nn.init.zeros_(ema.blocks[0].adapter_mlp.up.weight)
        mlp_inputs = []
        handle = block.norm2.register_forward_hook(lambda m, i, o: mlp_inputs.append(o))
        out = block(tokens)
        handle.remove()
        expected = ref + adapter.branch(mlp_inputs[0])
        assert expected.sub(ref).abs().max() > 0.1
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ema.blocks[0](tokens), ref, rtol=0, atol=0)


def test_series_adapters_are_refused_on_transformer_blocks():
    with pytest.raises(TypeError, match="takes \\['parallel'\\] adapters"):
        with_residual_adapters(_vit(), kind="series")


def test_vit_record_plugs_into_every_detector():
    """trunk.name=vits14 puts the ViT under NAS-FPN + Cascade: one CPU train step, gradients only
    outside the frozen trunk."""
    from detectron2.config import instantiate
    from detectron2.structures import Boxes, Instances
    from detectron2.utils.events import EventStorage
    from freezedet.config import TRUNKS
    from freezedet.engine import load_config

    assert TRUNKS["vits14"].patch_size == 14 and TRUNKS["vitb16clip"].top1 == 80.2
    cfg = load_config(
        "DeepForest/cascade_rcnn_nasfpn.py",
        ["trunk.name=vits14", "model.backbone.bottom_up.timm_kwargs={depth:1}"],
    )
    assert cfg.train.init_checkpoint == "" and cfg.model.input_format == "RGB"
    assert cfg.dataloader.train.mapper.image_format == "RGB"
    assert cfg.model.backbone.bottom_up.timm_kwargs == {"depth": 1}
    cfg.model.backbone.num_repeats = 1
    cfg.model.backbone.out_channels = 32
    cfg.model.roi_heads.batch_size_per_image = 16
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    inst = Instances((256, 256), gt_boxes=Boxes(torch.tensor([[10.0, 10.0, 60.0, 70.0]])))
    inst.gt_classes = torch.tensor([0])
    model.train()
    with EventStorage():
        losses = model([{"image": torch.rand(3, 256, 256) * 255, "instances": inst}])
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    loss.backward()
    vit = model.backbone.bottom_up.trunk
    assert all(p.grad is None for p in vit.parameters())
    assert model.backbone.bottom_up.pyramid["c3"].weight.grad is not None


def test_vit_recipe_trains_from_a_weights_file(synthetic_run_opts, tmp_path):
    """tools/train_net.py in-process on the DeepForest ViT recipe, the trunk's weights from a
    local file given on the command line: 2 iterations train the pyramid, the trunk stays the
    file's."""
    import timm

    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.config import instantiate
    from freezedet.engine import argument_parser, load_config, main
    from freezedet.model_zoo import get_config_file

    torch.manual_seed(3)
    src = timm.create_model(DINO, pretrained=False, depth=2)
    path = str(tmp_path / "dinov2_s14_depth2.safetensors")
    _save(src.state_dict(), path)
    out = str(tmp_path / "run")
    opts = [
        f"model.backbone.bottom_up.weights={path}",
        "model.backbone.bottom_up.timm_kwargs={depth:2}",
        f"train.output_dir={out}",
        "train.max_iter=2",
        "train.seed=0",
        *synthetic_run_opts,
    ]
    config = get_config_file("DeepForest/faster_rcnn_simplefpn.py")
    initial = instantiate(load_config(config, opts).model)
    DetectionCheckpointer(initial, str(tmp_path)).save("initial")
    opts.append(f"train.init_checkpoint={tmp_path / 'initial.pth'}")
    main(argument_parser().parse_args(["--config-file", config, *opts]))
    trained = torch.load(os.path.join(out, "model_final.pth"), weights_only=False)["model"]
    prefix = "backbone.bottom_up.trunk.vit."
    trunk = {k[len(prefix) :]: v for k, v in trained.items() if k.startswith(prefix)}
    assert trunk.keys() == src.state_dict().keys()
    for k, v in src.state_dict().items():
        assert torch.equal(trunk[k], v), f"frozen {k} is not the file's"
    start = initial.state_dict()
    pyramid = [k for k in trained if k.startswith("backbone.bottom_up.pyramid.")]
    assert len(pyramid) == 8, pyramid  # weight + bias of c2: 2 deconvs and a norm; c3: a deconv
    for k in pyramid:
        assert not torch.equal(trained[k], start[k]), f"{k} did not train"
