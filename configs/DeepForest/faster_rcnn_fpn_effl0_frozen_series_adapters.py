# The frozen EfficientNet-Lite0 with series residual adapters in every block.
from ..common.adapters import use_adapters
from .faster_rcnn_fpn import dataloader, lr_multiplier, model, optimizer, train

use_adapters(model, kind="series")
