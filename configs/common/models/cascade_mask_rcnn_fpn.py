# Cascade Mask R-CNN on FPN.
from .cascade_heads import make_cascade_roi_heads
from .mask_rcnn_fpn import model

make_cascade_roi_heads(model.roi_heads)
