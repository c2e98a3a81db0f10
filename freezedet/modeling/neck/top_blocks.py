"""Extra coarse FPN levels as the TF reference builds them (TF Model Garden
``official/vision/modeling/decoders/fpn.py``): a level above the backbone's last one is a
stride-2 3x3 conv of the previous *output* level, followed by the FPN's norm. detectron2's
``LastLevelMaxPool`` max-pools instead and ``LastLevelP6P7`` adds two levels."""

import fvcore.nn.weight_init as weight_init
from torch import nn

from detectron2.layers import Conv2d, get_norm

__all__ = ["LastLevelP6Conv"]


class LastLevelP6Conv(nn.Module):
    """detectron2 FPN ``top_block``: P6 = norm(conv3x3 stride 2 (P5))."""

    def __init__(self, *, channels: int, in_feature: str = "p5", norm: str = ""):
        """
        Args:
            channels (int): FPN width (input and output channels).
            in_feature (str): the level it reads, an FPN output ("p5") or a bottom-up feature.
            norm (str): detectron2 norm after the conv ("" for none; the conv then has a bias).
        """
        super().__init__()
        self.num_levels = 1
        self.in_feature = in_feature
        self.p6 = Conv2d(
            channels, channels, 3, stride=2, padding=1, bias=not norm, norm=get_norm(norm, channels)
        )
        weight_init.c2_xavier_fill(self.p6)  # as detectron2's FPN convs

    def forward(self, x):
        return [self.p6(x)]
