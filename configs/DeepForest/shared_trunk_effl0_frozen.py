# FPN, NAS-FPN and Cascade NAS-FPN detectors trained together on one frozen ImageNet
# EfficientNet-Lite0 (one trunk pass per step), DeepForest tiles, CPU-sized: the detectors of the
# three DeepForest recipes at their default trunk and mode.
import copy

from ..common.models.shared_trunk import model
from .cascade_rcnn_nasfpn import model as _cascade_nasfpn
from .faster_rcnn_fpn import dataloader, lr_multiplier, optimizer, train
from .faster_rcnn_fpn import model as _fpn
from .faster_rcnn_nasfpn import model as _nasfpn

model.detectors = [_fpn, _nasfpn, _cascade_nasfpn]
model.names = ["fpn", "nasfpn", "cascade_nasfpn"]
model.trunk = copy.deepcopy(_fpn.backbone.bottom_up)
