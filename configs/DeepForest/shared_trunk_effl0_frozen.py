# FPN, NAS-FPN and Cascade NAS-FPN detectors trained together on one frozen ImageNet
# EfficientNet-Lite0 (one trunk pass per step), DeepForest tiles, CPU-sized.
import copy

from ..common.backbones import use_backbone
from ..common.data.deepforest import dataloader
from ..common.cpu_recipe import cpu_recipe
from ..common.models.shared_trunk import model
from ..common.optim import SGD as optimizer
from ..common.train import train

for detector in model.detectors:
    use_backbone(detector, dataloader, train, "effl0", "frozen")
    lr_multiplier = cpu_recipe(detector, train, optimizer)
model.trunk = copy.deepcopy(model.detectors[0].backbone.bottom_up)
