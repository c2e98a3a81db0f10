# Mask R-CNN + FPN for your own COCO-format data with polygon (or RLE) masks: faster_rcnn_fpn.py's
# data, schedule, trunk (its `trunk` dict, so the same `trunk.*` overrides) and choices plus the
# mask branch.
from freezedet.config import use_trunk

from ..common.models.mask_rcnn_fpn import model
from .faster_rcnn_fpn import dataloader, lr_multiplier, optimizer, train, trunk

use_trunk(model, dataloader, train, **trunk)
dataloader.train.mapper.use_instance_mask = True
model.roi_heads.num_classes = 1  # must equal the json's category count (checked at start)
model.roi_heads.box_predictor.test_topk_per_image = 1000
