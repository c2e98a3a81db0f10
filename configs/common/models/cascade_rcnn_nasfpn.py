# Cascade R-CNN on NAS-FPN: the paper's highest-capacity detector on a frozen trunk.
from .cascade_heads import make_cascade_roi_heads
from .faster_rcnn_nasfpn import model

make_cascade_roi_heads(model.roi_heads)
