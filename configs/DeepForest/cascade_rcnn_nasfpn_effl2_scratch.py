# Cascade R-CNN + NAS-FPN, EfficientNet-Lite2 (real ImageNet weights) trunk, scratch.
from ..common.backbones import use_backbone
from .cascade_rcnn_nasfpn_effl2_frozen import dataloader, lr_multiplier, model, optimizer, train

use_backbone(model, dataloader, train, "effl2", "scratch")
