# RetinaNet + NAS-FPN on DeepForest tiles, CPU-sized. Trunk and mode are overrides (default: the
# frozen ImageNet EfficientNet-Lite0), e.g. `trunk.name=effl1 trunk.mode=finetune`; trunks: TRUNKS
# in freezedet/config/trunks.py, modes: frozen, finetune, scratch.
from freezedet.config import use_trunk

from ..common.cpu_recipe import cpu_schedule
from ..common.data.deepforest import dataloader
from ..common.models.retinanet_nasfpn import model
from ..common.optim import SGD as optimizer
from ..common.train import train

trunk = dict(name="effl0", mode="frozen")
use_trunk(model, dataloader, train, **trunk)

# NAS-FPN: 3 blocks of width 128 instead of 7 of 256
model.backbone.num_repeats = 3
model.backbone.out_channels = 128
model.num_classes = 1
model.max_detections_per_image = 300
# trees are 17-73 px (5th-95th percentile): anchors one octave below COCO's (3 scales per level)
model.anchor_generator.sizes = [
    [x, x * 2 ** (1.0 / 3), x * 2 ** (2.0 / 3)] for x in [16, 32, 64, 128, 256]
]
lr_multiplier = cpu_schedule(train, optimizer)
