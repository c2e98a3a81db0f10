# Cascade Mask R-CNN + NAS-FPN on a frozen ImageNet ResNet-50, COCO, LSJ 1024 + Copy-Paste.
from ..common.data.coco_lsj_copypaste import dataloader
from .cascade_mask_rcnn_nasfpn_72ep import lr_multiplier, model, optimizer, train

dataloader.train.mapper.image_format = model.input_format
