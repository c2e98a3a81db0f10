# The frozen EfficientNet-Lite0 with parallel residual adapters in every block.
from ..common.adapters import use_adapters
from .faster_rcnn_fpn import dataloader, lr_multiplier, model, optimizer, train

use_adapters(model, kind="parallel")
