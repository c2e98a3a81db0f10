# Faster R-CNN + a plain neck of 4 stacked conv layers per level on the frozen ImageNet
# EfficientNet-Lite0, DeepForest tiles, CPU-sized: the detector-capacity ablation of "Proper Reuse".
from ..common.backbones import use_backbone
from ..common.cpu_recipe import cpu_recipe
from ..common.data.deepforest import dataloader
from ..common.models.faster_rcnn_plainneck import model
from ..common.optim import SGD as optimizer
from ..common.train import train

model.backbone.num_layers = 4
use_backbone(model, dataloader, train, "effl0", "frozen")
lr_multiplier = cpu_recipe(model, train, optimizer)
