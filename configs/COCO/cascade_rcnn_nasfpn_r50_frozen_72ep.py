# Cascade R-CNN + NAS-FPN on a frozen ImageNet ResNet-50, COCO, LSJ 1024, batch 64, 72 epochs.
from ..common.backbones import use_backbone
from ..common.coco_recipe import coco_recipe
from ..common.data.coco_lsj import dataloader
from ..common.models.cascade_rcnn_nasfpn import model
from ..common.optim import SGD as optimizer
from ..common.train import train

use_backbone(model, dataloader, train, "r50", "frozen")
lr_multiplier = coco_recipe(model, train, optimizer, epochs=72)
dataloader.train.mapper.use_instance_mask = False
