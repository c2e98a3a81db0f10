# The frozen EfficientNet-Lite0 with series residual adapters in every block.
from ..common.adapters import use_adapters
from .cascade_rcnn_nasfpn import dataloader, lr_multiplier, model, optimizer, train

use_adapters(model, kind="series")
