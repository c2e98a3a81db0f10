import pytest
import torch
from torch import nn

from detectron2.layers import ShapeSpec
from detectron2.modeling import Backbone


class TinyBottomUp(Backbone):
    """C3-C5 from strided convs (floor-divided sizes): a cheap bottom-up for neck tests."""

    def __init__(self):
        super().__init__()
        self.c3 = nn.Conv2d(3, 8, 8, stride=8)
        self.c4 = nn.Conv2d(8, 12, 2, stride=2)
        self.c5 = nn.Conv2d(12, 16, 2, stride=2)

    def forward(self, x):
        c3 = self.c3(x)
        c4 = self.c4(c3)
        return {"c3": c3, "c4": c4, "c5": self.c5(c4)}

    def output_shape(self):
        return {
            "c3": ShapeSpec(channels=8, stride=8),
            "c4": ShapeSpec(channels=12, stride=16),
            "c5": ShapeSpec(channels=16, stride=32),
        }


@pytest.fixture
def tiny_bottom_up():
    """A fresh :class:`TinyBottomUp` (C3/C4/C5 with 8/12/16 channels, strides 8/16/32), with
    the same weights in every test and without touching the global RNG."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return TinyBottomUp()
