"""The RPN head of the TF reference ("Proper Reuse" uses TF Model Garden's Mask R-CNN):
``official/vision/modeling/heads/dense_prediction_heads.py`` ``RPNHead``. Its 3x3 convs are
shared across pyramid levels, each followed by a norm *of its own per level* and the
activation; a 1x1 conv predicts objectness and one predicts box deltas. detectron2's
:class:`StandardRPNHead` has no norm and always uses ReLU.
"""

from typing import List, Sequence

import torch
from torch import nn

from detectron2.config import configurable
from detectron2.layers import get_norm
from detectron2.modeling.proposal_generator import RPN_HEAD_REGISTRY
from detectron2.modeling.proposal_generator.rpn import StandardRPNHead

from .._activation import get_activation

__all__ = ["NormRPNHead"]


@RPN_HEAD_REGISTRY.register()
class NormRPNHead(nn.Module):
    """Shared 3x3 convs -> per-level norm -> activation, then objectness and delta 1x1 convs."""

    @configurable
    def __init__(
        self,
        *,
        in_channels: int,
        num_anchors: int,
        in_features: Sequence[str],
        conv_dims: Sequence[int] = (256,),
        norm: str = "SyncBN",
        activation: str = "relu",
        box_dim: int = 4,
    ):
        """
        Args:
            in_channels (int): channels of every input level.
            num_anchors (int): anchors per position (the anchor generator's).
            in_features (Sequence[str]): the RPN's input levels, in order (one norm per level
                and conv); the head receives one feature map per entry.
            conv_dims (Sequence[int]): output channels of the shared 3x3 convs (TF default: one
                of 256; the Copy-Paste B7 config: two).
            norm (str): detectron2 norm per level and conv ("" for none).
            activation (str): "relu" or "swish".
            box_dim (int): box parameters predicted per anchor.
        """
        super().__init__()
        get_activation(activation)
        self.activation = activation
        self.num_levels = len(in_features)
        self.convs = nn.ModuleList()
        c = in_channels
        for dim in conv_dims:
            conv = nn.Conv2d(c, dim, 3, padding=1)
            nn.init.normal_(conv.weight, std=0.01)  # TF: RandomNormal(0.01), zero bias
            nn.init.zeros_(conv.bias)
            self.convs.append(conv)
            c = dim
        self.norms = nn.ModuleList(
            nn.ModuleList(
                get_norm(norm, dim) if norm else nn.Identity() for _ in range(self.num_levels)
            )
            for dim in conv_dims
        )
        self.objectness_logits = nn.Conv2d(c, num_anchors, 1)
        self.anchor_deltas = nn.Conv2d(c, num_anchors * box_dim, 1)
        for layer in (self.objectness_logits, self.anchor_deltas):
            nn.init.normal_(layer.weight, std=1e-5)  # TF: RandomNormal(1e-5), zero bias
            nn.init.zeros_(layer.bias)

    @classmethod
    def from_config(cls, cfg, input_shape):
        args = StandardRPNHead.from_config(cfg, input_shape)
        args["conv_dims"] = [d if d > 0 else args["in_channels"] for d in args["conv_dims"]]
        return {**args, "in_features": list(cfg.MODEL.RPN.IN_FEATURES)}

    def forward(self, features: List[torch.Tensor]):
        """Per level: objectness logits (N, A, H, W) and deltas (N, A * box_dim, H, W)."""
        assert len(features) == self.num_levels, f"{len(features)} levels != {self.num_levels}"
        act = get_activation(self.activation)
        logits, deltas = [], []
        for level, x in enumerate(features):
            for conv, norms in zip(self.convs, self.norms):
                x = act(norms[level](conv(x)))
            logits.append(self.objectness_logits(x))
            deltas.append(self.anchor_deltas(x))
        return logits, deltas
