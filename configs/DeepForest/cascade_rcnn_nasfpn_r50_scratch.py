# Cascade R-CNN + NAS-FPN, detectron2 ResNet-50 trunk, scratch.
from ..common.backbones import use_backbone
from .cascade_rcnn_nasfpn_effl0_frozen import dataloader, lr_multiplier, model, optimizer, train

use_backbone(model, dataloader, train, "r50", "scratch")
