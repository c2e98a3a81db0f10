# Faster R-CNN + FPN on the frozen ImageNet EfficientNet-Lite1, DeepForest tiles, CPU-sized.
from ..common.backbones import use_backbone
from ..common.data.deepforest import dataloader
from ..common.cpu_recipe import cpu_recipe
from ..common.models.faster_rcnn_fpn import model
from ..common.optim import SGD as optimizer
from ..common.train import train

use_backbone(model, dataloader, train, "effl1", "frozen")
lr_multiplier = cpu_recipe(model, train, optimizer)
