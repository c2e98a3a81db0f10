# EfficientNet-B7, frozen, Cascade + NAS-FPN 7@384: the paper's largest frozen detector.
from ..common.backbones import use_backbone
from .cascade_rcnn_nasfpn_r50_frozen_600ep import dataloader, lr_multiplier, model, optimizer, train

use_backbone(model, dataloader, train, "effb7", "frozen")
model.backbone.out_channels = 384
