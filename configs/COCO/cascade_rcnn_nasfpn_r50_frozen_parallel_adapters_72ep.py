# The frozen ResNet-50 with parallel residual adapters in every bottleneck (3x3 convs).
from ..common.adapters import use_adapters
from .cascade_rcnn_nasfpn_72ep import dataloader, lr_multiplier, model, optimizer, train

use_adapters(model, kind="parallel")
