# Cascade R-CNN + NAS-FPN on the frozen ImageNet EfficientNet-Lite1, DeepForest tiles, CPU-sized.
from ..common.backbones import use_backbone
from ..common.data.deepforest import dataloader
from ..common.cpu_recipe import cpu_recipe
from ..common.models.cascade_rcnn_nasfpn import model
from ..common.optim import SGD as optimizer
from ..common.train import train

use_backbone(model, dataloader, train, "effl1", "frozen")
lr_multiplier = cpu_recipe(model, train, optimizer)
