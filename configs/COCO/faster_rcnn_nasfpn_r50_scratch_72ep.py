# Faster R-CNN + NAS-FPN, ResNet-50 trunk from scratch (random init), COCO 72 epochs: the trunk
# trains with synchronised BN (detectron2's NaiveSyncBatchNorm on CPU), as the fine-tuned baseline.
from .faster_rcnn_nasfpn_r50_frozen_72ep import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.update(mode="scratch", norm="SyncBN")
train.init_checkpoint = ""
