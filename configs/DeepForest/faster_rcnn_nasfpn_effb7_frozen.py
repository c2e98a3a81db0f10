# Faster R-CNN + NAS-FPN, EfficientNet-B7 (structure only here) trunk, frozen.
from ..common.backbones import use_backbone
from .faster_rcnn_nasfpn_effl0_frozen import dataloader, lr_multiplier, model, optimizer, train

use_backbone(model, dataloader, train, "effb7", "frozen")
