# RetinaNet + NAS-FPN, EfficientNet-Lite0 (real ImageNet weights) trunk, scratch.
from ..common.backbones import use_backbone
from .retinanet_nasfpn_effl0_frozen import dataloader, lr_multiplier, model, optimizer, train

use_backbone(model, dataloader, train, "effl0", "scratch")
