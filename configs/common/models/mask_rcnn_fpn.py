# Mask R-CNN on FPN: faster_rcnn_fpn plus the mask branch on p3-p5.
from .faster_rcnn_fpn import model
from .mask_heads import add_mask_head

add_mask_head(model.roi_heads)
