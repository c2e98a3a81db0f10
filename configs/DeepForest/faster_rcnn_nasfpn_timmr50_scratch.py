# Faster R-CNN + NAS-FPN, timm ResNet-50 trunk, scratch.
from ..common.backbones import use_backbone
from .faster_rcnn_nasfpn_effl0_frozen import dataloader, lr_multiplier, model, optimizer, train

use_backbone(model, dataloader, train, "timmr50", "scratch")
