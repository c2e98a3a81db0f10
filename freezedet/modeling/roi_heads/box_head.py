"""The RoI box head of the TF reference ("Proper Reuse" uses TF Model Garden's Mask R-CNN):
``official/vision/modeling/heads/instance_heads.py`` ``DetectionHead`` with
``num_convs=4`` (``official/vision/configs/maskrcnn.py`` default) and ``num_fcs=2``
(``official/projects/backbone_reuse/configs/experiments/faster_rcnn/*.yaml``): each 3x3 conv and
each fc is followed by a norm and the activation.

detectron2's :class:`FastRCNNConvFCHead` normalises convs only and always uses ReLU; this head
normalises the fcs as well (as BN over the RoIs, TF's ``BatchNormalization`` on the fc output)
and takes the activation by name.
"""

from typing import Sequence

import torch
from torch import nn

from detectron2.config import configurable
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.modeling.roi_heads import ROI_BOX_HEAD_REGISTRY

from .._activation import get_activation

__all__ = ["ConvFCNormHead"]


@ROI_BOX_HEAD_REGISTRY.register()
class ConvFCNormHead(nn.Module):
    """3x3 convs (conv -> norm -> act) then fcs (fc -> norm -> act) on pooled RoI features."""

    @configurable
    def __init__(
        self,
        *,
        input_shape: ShapeSpec,
        conv_dims: Sequence[int] = (256, 256, 256, 256),
        fc_dims: Sequence[int] = (1024, 1024),
        norm: str = "SyncBN",
        activation: str = "relu",
    ):
        """
        Args:
            input_shape (ShapeSpec): pooled RoI features (channels, height, width).
            conv_dims (Sequence[int]): output channels of the 3x3 convs (TF: 4 x 256).
            fc_dims (Sequence[int]): output sizes of the fcs (TF: 2 x 1024, at least one).
            norm (str): detectron2 norm after every conv and fc ("" for none; then layers have a
                bias). The fc norm runs on (N, C, 1, 1), so BN variants normalise over RoIs.
            activation (str): "relu" or "swish".
        """
        super().__init__()
        assert len(fc_dims) > 0, "ConvFCNormHead needs at least one fc"
        get_activation(activation)
        self.activation = activation
        c, h, w = input_shape.channels, input_shape.height, input_shape.width
        self.convs = nn.ModuleList()
        for dim in conv_dims:
            conv = Conv2d(c, dim, 3, padding=1, bias=not norm, norm=get_norm(norm, dim))
            # TF: VarianceScaling(scale=2, fan_out, untruncated normal)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
            self.convs.append(conv)
            c = dim
        self.fcs = nn.ModuleList()
        self.fc_norms = nn.ModuleList()
        d = c * h * w
        for dim in fc_dims:
            fc = nn.Linear(d, dim, bias=not norm)
            # TF: VarianceScaling(scale=1/3, fan_out, uniform) = U(-1/sqrt(fan_out), ...)
            nn.init.uniform_(fc.weight, -(dim**-0.5), dim**-0.5)
            if fc.bias is not None:
                nn.init.zeros_(fc.bias)
            self.fcs.append(fc)
            self.fc_norms.append(get_norm(norm, dim) if norm else nn.Identity())
            d = dim
        self._output_size = d

    @classmethod
    def from_config(cls, cfg, input_shape):
        head = cfg.MODEL.ROI_BOX_HEAD
        return {
            "input_shape": input_shape,
            "conv_dims": [head.CONV_DIM] * head.NUM_CONV,
            "fc_dims": [head.FC_DIM] * head.NUM_FC,
            "norm": head.NORM,
            "activation": "relu",
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = get_activation(self.activation)
        for conv in self.convs:
            x = act(conv(x))
        x = torch.flatten(x, start_dim=1)
        for fc, norm in zip(self.fcs, self.fc_norms):
            x = fc(x)
            # torch's SyncBatchNorm rejects an empty batch (an image without RoIs)
            if len(x) and not isinstance(norm, nn.Identity):
                x = norm(x[:, :, None, None]).flatten(1)
            x = act(x)
        return x

    @property
    @torch.jit.unused
    def output_shape(self) -> ShapeSpec:
        return ShapeSpec(channels=self._output_size)
