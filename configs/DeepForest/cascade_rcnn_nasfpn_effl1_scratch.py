# Cascade R-CNN + NAS-FPN, EfficientNet-Lite1 (real ImageNet weights) trunk, scratch.
from ..common.backbones import use_backbone
from .cascade_rcnn_nasfpn_effl1_frozen import dataloader, lr_multiplier, model, optimizer, train

use_backbone(model, dataloader, train, "effl1", "scratch")
