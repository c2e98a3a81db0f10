# Cascade Mask R-CNN on NAS-FPN.
from .cascade_heads import make_cascade_roi_heads
from .mask_rcnn_nasfpn import model

make_cascade_roi_heads(model.roi_heads)
