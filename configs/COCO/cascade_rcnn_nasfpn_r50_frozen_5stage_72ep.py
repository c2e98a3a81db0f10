# The TF config's cascade with two extra stages (IoU 0.7, 0.8) on top of the default three.
from ..common.models.cascade_heads import CASCADE_STAGES, EXTRA_STAGES, make_cascade_roi_heads
from .cascade_rcnn_nasfpn_r50_frozen_72ep import dataloader, lr_multiplier, model, optimizer, train

make_cascade_roi_heads(model.roi_heads, stages=CASCADE_STAGES + EXTRA_STAGES)
