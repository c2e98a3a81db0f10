# Faster R-CNN on a plain ViT: ViTDet's simple feature pyramid (Li et al., ECCV 2022) gives C2-C5
# from the ViT's last map (deconvolutions to strides 8 and 4, max-pool to 32), FPN on them gives
# P2-P6, detectron2's FPN layout (anchors 32-512, RoI pooling from P2-P5). The trunk is a DINOv2
# ViT-S/14, frozen, random weights unless `model.backbone.bottom_up.weights` names a file.
from detectron2.config import LazyCall as L

from freezedet.modeling.backbone import ViTBackbone

from .faster_rcnn_fpn import model

model.backbone.bottom_up = L(ViTBackbone)(
    model_name="vit_small_patch14_dinov2",
    out_features=["c2", "c3", "c4", "c5"],
    mode="frozen",
    norm="FrozenBN",
)
model.proposal_generator.in_features = ["p2", "p3", "p4", "p5", "p6"]
model.proposal_generator.anchor_generator.sizes = [[32], [64], [128], [256], [512]]
model.proposal_generator.anchor_generator.strides = [4, 8, 16, 32, 64]
model.roi_heads.box_in_features = ["p2", "p3", "p4", "p5"]
model.roi_heads.box_pooler.scales = [1.0 / 4, 1.0 / 8, 1.0 / 16, 1.0 / 32]
# DINOv2's ImageNet preprocessing
model.pixel_mean = [123.675, 116.28, 103.53]
model.pixel_std = [58.395, 57.12, 57.375]
