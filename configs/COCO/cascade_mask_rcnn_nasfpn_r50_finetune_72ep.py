# Cascade Mask R-CNN + NAS-FPN, ResNet-50 trunk fine-tuned, COCO 72 epochs: every trunk variable
# trains and its BN statistics too, synchronised across GPUs (the reference with freeze_backbone
# false: norm_activation.use_sync_bn; detectron2's NaiveSyncBatchNorm on CPU). Otherwise the frozen
# recipe.
from .cascade_mask_rcnn_nasfpn_r50_frozen_72ep import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

model.backbone.bottom_up.update(mode="finetune", norm="SyncBN")
