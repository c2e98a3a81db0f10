# Faster R-CNN + a 1-layer plain neck, EfficientNet-Lite0 trunk fine-tuned.
from ..common.backbones import use_backbone
from .faster_rcnn_plainneck1_effl0_frozen import dataloader, lr_multiplier, model, optimizer, train

use_backbone(model, dataloader, train, "effl0", "finetune")
