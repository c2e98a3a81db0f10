# Faster R-CNN + FPN, detectron2 ResNet-50 trunk, frozen.
from ..common.backbones import use_backbone
from .faster_rcnn_fpn_effl0_frozen import dataloader, lr_multiplier, model, optimizer, train

use_backbone(model, dataloader, train, "r50", "frozen")
