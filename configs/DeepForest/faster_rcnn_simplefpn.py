# Faster R-CNN on a plain ViT (simple pyramid + FPN, P2-P6) on DeepForest tiles, CPU-sized.
# Default: the frozen DINOv2 ViT-S/14, random weights unless given a file (docs/training.md "Frozen
# ViT / ConvNeXt trunks"):
#     model.backbone.bottom_up.weights=/path/to/vit_small_patch14_dinov2.safetensors
# Another trunk or mode is an override, e.g. `trunk.name=vitb16clip` (trunks: TRUNKS in
# freezedet/config/trunks.py); the recipe's four pyramid levels (C2-C5) carry over.
from freezedet.config import use_trunk

from ..common.cpu_recipe import cpu_schedule
from ..common.data.deepforest import dataloader
from ..common.models.faster_rcnn_simplefpn import model
from ..common.optim import SGD as optimizer
from ..common.train import train

trunk = dict(name="vits14", mode="frozen")
use_trunk(model, dataloader, train, **trunk)

# 400 px tiles give a 100 x 100 stride-4 map: a 128-channel neck keeps the CPU step short
model.backbone.out_channels = 128
model.roi_heads.num_classes = 1
model.roi_heads.batch_size_per_image = 128  # COCO: 512
model.roi_heads.box_pooler.sampling_ratio = 2
# <= 61 trees per tile: 300 test proposals instead of 1000 cut inference cost 3x
model.roi_heads.box_predictor.test_topk_per_image = 300
model.proposal_generator.post_nms_topk = (1000, 300)
# trees are 17-73 px (5th-95th percentile): anchors one octave below COCO's
model.proposal_generator.anchor_generator.sizes = [[16], [32], [64], [128], [256]]
lr_multiplier = cpu_schedule(train, optimizer)
