# Cascade Mask R-CNN on a plain ViT's simple feature pyramid + FPN (P2-P6), the ViTDet detector.
from .cascade_heads import make_cascade_roi_heads
from .faster_rcnn_simplefpn import model
from .mask_heads import add_mask_head

make_cascade_roi_heads(model.roi_heads)
add_mask_head(model.roi_heads)
