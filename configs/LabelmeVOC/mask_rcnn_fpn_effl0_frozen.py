# Mask R-CNN + FPN on the frozen EfficientNet-Lite0, labelme's VOC photos (masks), CPU.
from ..common.backbones import use_backbone
from ..common.data.labelme_voc import dataloader
from ..common.cpu_recipe import cpu_recipe
from ..common.models.mask_rcnn_fpn import model
from ..common.optim import SGD as optimizer
from ..common.train import train

use_backbone(model, dataloader, train, "effl0", "frozen")
lr_multiplier = cpu_recipe(model, train, optimizer, max_iter=100)
model.roi_heads.num_classes = 20  # VOC classes
model.proposal_generator.anchor_generator.sizes = [[32], [64], [128], [256]]
