"""A plain convolutional neck of adjustable depth, for the detector-capacity ablation of "Proper
Reuse of Image Classification Features Improves Object Detection" (Vasconcelos, Birodkar,
Dumoulin, CVPR 2022): with a frozen trunk, the capacity of the remaining detector components
decides how much of the classifier's features the detector can use. This neck varies that
capacity with one knob, the number of stacked conv layers per level, without NAS-FPN's searched
cross-scale connections.
"""

from typing import Dict, Sequence

import fvcore.nn.weight_init as weight_init
import torch
import torch.nn.functional as F
from torch import nn

from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.modeling import BACKBONE_REGISTRY, Backbone

from ._common import build_bottom_up, check_c3_c5, make_laterals

__all__ = ["PlainNeck", "build_freezedet_plainneck_backbone"]

_ACTIVATIONS = {"relu": nn.ReLU, "swish": nn.SiLU, "silu": nn.SiLU}


class PlainNeck(Backbone):
    """FPN-style laterals and top-down merge, then ``num_layers`` stacked 3x3 conv + norm +
    activation per level; outputs ``p3``..``p6`` (strides 8..64), like detectron2's FPN with
    ``LastLevelMaxPool``, so it drops into the Faster R-CNN + FPN model unchanged.

    Per level l: ``x_l = lateral_l(C_l) + upsample(x_{l+1})`` (1x1 conv + norm; nearest 2x
    upsampling, as FPN), then ``num_layers`` times ``act(norm(conv3x3(x)))`` with weights of
    its own per level and layer. P6 is P5 max-pooled with stride 2. FPN itself is the
    ``num_layers=1`` case without norm and activation on its single output conv; the capacity
    ablation uses ``num_layers`` = 1, 2, 4.
    """

    def __init__(
        self,
        *,
        bottom_up: Backbone,
        in_features: Sequence[str],
        out_channels: int = 256,
        num_layers: int = 1,
        norm: str = "BN",
        activation: str = "relu",
    ):
        """
        Args:
            bottom_up (Backbone): provides ``in_features`` (strides 8, 16, 32).
            in_features (Sequence[str]): names of C3, C4, C5 in ``bottom_up``'s outputs.
            out_channels (int): width of every level.
            num_layers (int): stacked 3x3 conv + norm + activation layers per level (>= 1).
            norm (str): detectron2 norm for laterals and stacked convs ("" for none, then the
                convs have biases).
            activation (str): "relu" or "swish", after each stacked conv's norm.
        """
        super().__init__()
        assert num_layers >= 1, f"num_layers={num_layers}: must be >= 1"
        assert activation in _ACTIVATIONS, f"activation={activation!r}: one of {list(_ACTIVATIONS)}"
        in_features = list(in_features)
        shapes = check_c3_c5(bottom_up, in_features, "PlainNeck")
        self.bottom_up = bottom_up
        self.in_features = in_features
        self.num_layers = num_layers
        self.laterals = make_laterals(shapes, in_features, out_channels, norm)
        self.stacks = nn.ModuleList()
        for _ in in_features:
            layers = []
            for _ in range(num_layers):
                conv = Conv2d(
                    out_channels,
                    out_channels,
                    3,
                    padding=1,
                    bias=not norm,
                    norm=get_norm(norm, out_channels),
                    activation=_ACTIVATIONS[activation](),
                )
                weight_init.c2_xavier_fill(conv)
                layers.append(conv)
            self.stacks.append(nn.Sequential(*layers))
        self._out_features = ["p3", "p4", "p5", "p6"]
        self._out_feature_channels = {f: out_channels for f in self._out_features}
        self._out_feature_strides = {f"p{level}": 2**level for level in range(3, 7)}
        # coarser levels must be exactly half the finer ones for the top-down sum
        self._size_divisibility = 32

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    @property
    def padding_constraints(self) -> Dict[str, int]:
        return {"size_divisibility": self._size_divisibility, "square_size": 0}

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        bottom_up = self.bottom_up(x)
        outs = []
        merged = None
        for f, lateral, stack in reversed(list(zip(self.in_features, self.laterals, self.stacks))):
            feat = lateral(bottom_up[f])
            if merged is not None:
                up = F.interpolate(merged, scale_factor=2.0, mode="nearest")
                if up.shape[-2:] != feat.shape[-2:]:
                    raise ValueError(
                        f"PlainNeck: {f!r} of size {tuple(feat.shape[-2:])} is not twice the "
                        f"coarser level {tuple(merged.shape[-2:])} (input {tuple(x.shape[-2:])}); "
                        f"pad inputs to a multiple of {self.size_divisibility}"
                    )
                feat = feat + up
            merged = feat
            outs.insert(0, stack(feat))
        outs.append(
            F.max_pool2d(outs[-1], kernel_size=1, stride=2)
        )  # P6, as FPN's LastLevelMaxPool
        return dict(zip(self._out_features, outs))


@BACKBONE_REGISTRY.register()
def build_freezedet_plainneck_backbone(cfg, input_shape: ShapeSpec):
    """yacs (after ``freezedet.config.add_freezedet_config``): :class:`PlainNeck` with
    ``MODEL.FREEZEDET.PLAIN_NECK.*`` on the bottom-up backbone of ``MODEL.FREEZEDET.BOTTOM_UP``
    (``configs/common/models/faster_rcnn_plainneck.py``)."""
    bottom_up = build_bottom_up(cfg, input_shape)
    c = cfg.MODEL.FREEZEDET.PLAIN_NECK
    return PlainNeck(
        bottom_up=bottom_up,
        in_features=list(bottom_up.output_shape()),
        out_channels=c.OUT_CHANNELS,
        num_layers=c.NUM_LAYERS,
        norm=c.NORM,
        activation=c.ACTIVATION,
    )
