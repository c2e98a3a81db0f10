# Mask R-CNN on NAS-FPN.
from .faster_rcnn_nasfpn import model
from .mask_heads import add_mask_head

add_mask_head(model.roi_heads)
