# Faster R-CNN + FPN on DeepForest tiles, CPU-sized. Trunk and mode are overrides (default: the
# frozen ImageNet EfficientNet-Lite0), e.g. `trunk.name=effl1 trunk.mode=finetune`; trunks: TRUNKS
# in freezedet/config/trunks.py, modes: frozen, finetune, scratch.
from freezedet.config import use_trunk

from ..common.cpu_recipe import cpu_schedule
from ..common.data.deepforest import dataloader
from ..common.models.faster_rcnn_fpn import model
from ..common.optim import SGD as optimizer
from ..common.train import train

trunk = dict(name="effl0", mode="frozen")
use_trunk(model, dataloader, train, **trunk)

model.roi_heads.num_classes = 1
model.roi_heads.batch_size_per_image = 128  # COCO: 512
model.roi_heads.box_pooler.sampling_ratio = 2
# <= 61 trees per tile: 300 test proposals instead of 1000 cut inference cost 3x
model.roi_heads.box_predictor.test_topk_per_image = 300
model.proposal_generator.post_nms_topk = (1000, 300)
# trees are 17-73 px (5th-95th percentile): anchors one octave below COCO's
model.proposal_generator.anchor_generator.sizes = [[16], [32], [64], [128]]
lr_multiplier = cpu_schedule(train, optimizer)
