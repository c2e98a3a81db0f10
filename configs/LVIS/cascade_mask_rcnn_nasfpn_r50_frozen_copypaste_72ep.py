# Long-tail stage 1: Cascade Mask R-CNN + NAS-FPN on a frozen ImageNet ResNet-50, LVIS v1,
# LSJ 1024 + Copy-Paste, repeat-factor sampling, softmax CE, batch 64, 72 epochs.
from ..common.backbones import use_backbone
from ..common.data.lvis_lsj import dataloader
from ..common.lvis_recipe import lvis_recipe
from ..common.models.cascade_mask_rcnn_nasfpn import model
from ..common.optim import SGD as optimizer
from ..common.train import train

use_backbone(model, dataloader, train, "r50", "frozen")
lr_multiplier = lvis_recipe(model, train, optimizer, epochs=72)
