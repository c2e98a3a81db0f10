# Faster R-CNN on a plain neck (P3-P6): faster_rcnn_fpn with FPN replaced by PlainNeck, the
# detector-capacity knob of "Proper Reuse" (num_layers stacked 3x3 conv + BN + ReLU per level).
from detectron2.config import LazyCall as L

from freezedet.modeling.neck import PlainNeck

from .faster_rcnn_fpn import model

model.backbone = L(PlainNeck)(
    bottom_up=model.backbone.bottom_up,
    in_features="${.bottom_up.out_features}",
    out_channels=256,
    num_layers=1,
    norm="BN",
    activation="relu",
)
