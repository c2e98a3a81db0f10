# RetinaNet + NAS-FPN on a frozen ImageNet ResNet-50, COCO, LSJ 1024, batch 64, 72 epochs.
# "Proper Reuse" TF config: official/projects/backbone_reuse/configs/experiments/retinanet/
# retinanet_resnet101_nasfpn_72epochs.yaml (batch 256, LR 0.32 -> 0.08 at batch 64, x0.1 at
# 2/3 and 17/18); NAS-FPN with TF Vision's defaults (5 repeats, sync BN, ReLU: the RetinaNet
# yamls set no activation). Anchors (4 strides, 3 scales, P3-P7) are already TF RetinaNet's
# defaults. The head keeps detectron2's RetinaNetHead with per-level BN (TF: per-level sync BN).
from ..common.backbones import use_backbone
from ..common.coco_recipe import coco_recipe
from ..common.data.coco_lsj import dataloader
from ..common.models.reference_heads import REFERENCE_NORM
from ..common.models.retinanet_nasfpn import model
from ..common.optim import SGD as optimizer
from ..common.train import train

use_backbone(model, dataloader, train, "r50", "frozen")
model.backbone.update(num_repeats=5, norm=REFERENCE_NORM, activation="relu")
model.head.norm = REFERENCE_NORM
lr_multiplier = coco_recipe(model, train, optimizer, epochs=72, lr=0.08)
dataloader.train.mapper.use_instance_mask = False
