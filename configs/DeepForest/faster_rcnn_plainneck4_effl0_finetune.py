# Faster R-CNN + a 4-layer plain neck, EfficientNet-Lite0 trunk fine-tuned.
from ..common.backbones import use_backbone
from .faster_rcnn_plainneck4_effl0_frozen import dataloader, lr_multiplier, model, optimizer, train

use_backbone(model, dataloader, train, "effl0", "finetune")
