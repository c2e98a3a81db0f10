# Cascade Mask R-CNN + NAS-FPN, ResNet-50 trunk finetune, COCO 72 epochs.
from ..common.backbones import use_backbone
from .cascade_mask_rcnn_nasfpn_r50_frozen_72ep import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

use_backbone(model, dataloader, train, "r50", "finetune")
