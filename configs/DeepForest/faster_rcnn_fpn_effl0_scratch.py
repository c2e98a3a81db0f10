# The from-scratch counterpart: random trunk, trainable BN, no ImageNet weights.
from .faster_rcnn_fpn_effl0_frozen import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.mode = "scratch"
model.backbone.bottom_up.norm = "BN"
train.init_checkpoint = ""
