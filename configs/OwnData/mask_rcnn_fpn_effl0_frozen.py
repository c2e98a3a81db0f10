# Mask R-CNN + FPN on the frozen ImageNet EfficientNet-Lite0 for your own COCO-format data with
# polygon (or RLE) masks: faster_rcnn_fpn_effl0_frozen.py's data, schedule and choices plus the
# mask branch.
from ..common.backbones import use_backbone
from ..common.models.mask_rcnn_fpn import model
from .faster_rcnn_fpn_effl0_frozen import dataloader, lr_multiplier, optimizer, train

use_backbone(model, dataloader, train, "effl0", "frozen")
dataloader.train.mapper.use_instance_mask = True
model.roi_heads.num_classes = 1  # must equal the json's category count (checked at start)
model.roi_heads.box_predictor.test_topk_per_image = 1000
