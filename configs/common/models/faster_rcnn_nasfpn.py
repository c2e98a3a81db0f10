# Faster R-CNN on NAS-FPN (P3-P7): faster_rcnn_fpn with the NAS-FPN neck of "Proper Reuse".
from detectron2.config import LazyCall as L

from freezedet.modeling.neck import NASFPN

from .faster_rcnn_fpn import model

model.backbone = L(NASFPN)(
    bottom_up=model.backbone.bottom_up,
    in_features="${.bottom_up.out_features}",
    out_channels=256,
    num_repeats=7,
    norm="BN",
    activation="relu",
)
model.proposal_generator.in_features = ["p3", "p4", "p5", "p6", "p7"]
model.proposal_generator.anchor_generator.sizes = [[32], [64], [128], [256], [512]]
model.proposal_generator.anchor_generator.strides = [8, 16, 32, 64, 128]
