# Cascade R-CNN (Cai & Vasconcelos, CVPR 2018) on FPN: faster_rcnn_fpn with the cascade heads.
from .cascade_heads import make_cascade_roi_heads
from .faster_rcnn_fpn import model

make_cascade_roi_heads(model.roi_heads)
