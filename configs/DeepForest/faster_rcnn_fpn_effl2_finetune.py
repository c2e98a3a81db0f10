# Faster R-CNN + FPN, EfficientNet-Lite2 (real ImageNet weights) trunk, finetune.
from ..common.backbones import use_backbone
from .faster_rcnn_fpn_effl2_frozen import dataloader, lr_multiplier, model, optimizer, train

use_backbone(model, dataloader, train, "effl2", "finetune")
