# Faster R-CNN on the frozen DINOv2 ViT-S/14 (simple pyramid + FPN, P2-P6), DeepForest tiles,
# CPU-sized. Random trunk weights unless given a file (README "Frozen ViT / ConvNeXt trunks"):
#     model.backbone.bottom_up.weights=/path/to/vit_small_patch14_dinov2.safetensors
# Another trunk or mode is an override of the bottom-up, e.g. model.backbone.bottom_up.model_name=
# vit_base_patch16_clip_224 (with that trunk's pixel statistics, configs/common/backbones.py).
from ..common.backbones import use_backbone
from ..common.cpu_recipe import cpu_recipe
from ..common.data.deepforest import dataloader
from ..common.models.faster_rcnn_simplefpn import model
from ..common.optim import SGD as optimizer
from ..common.train import train

use_backbone(model, dataloader, train, "vits14", "frozen")
# the records feed C3-C5 to any neck; this model's P2-P6 take the stride-4 level too
model.backbone.bottom_up.out_features = ["c2", "c3", "c4", "c5"]
# 400 px tiles give a 100 x 100 stride-4 map: a 128-channel neck keeps the CPU step short
model.backbone.out_channels = 128
lr_multiplier = cpu_recipe(model, train, optimizer)
