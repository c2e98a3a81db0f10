# Faster R-CNN + a plain neck of 1 stacked conv layer per level on DeepForest tiles, CPU-sized: the
# detector-capacity ablation of "Proper Reuse" (2 and 4 layers: faster_rcnn_plainneck{2,4}.py).
# Trunk and mode are overrides (default: the frozen ImageNet EfficientNet-Lite0), e.g.
# `trunk.mode=finetune`; trunks: TRUNKS in freezedet/config/trunks.py.
from freezedet.config import use_trunk

from ..common.cpu_recipe import cpu_schedule
from ..common.data.deepforest import dataloader
from ..common.models.faster_rcnn_plainneck import model
from ..common.optim import SGD as optimizer
from ..common.train import train

trunk = dict(name="effl0", mode="frozen")
use_trunk(model, dataloader, train, **trunk)

model.backbone.num_layers = 1
model.roi_heads.num_classes = 1
model.roi_heads.batch_size_per_image = 128  # COCO: 512
model.roi_heads.box_pooler.sampling_ratio = 2
# <= 61 trees per tile: 300 test proposals instead of 1000 cut inference cost 3x
model.roi_heads.box_predictor.test_topk_per_image = 300
model.proposal_generator.post_nms_topk = (1000, 300)
# trees are 17-73 px (5th-95th percentile): anchors one octave below COCO's
model.proposal_generator.anchor_generator.sizes = [[16], [32], [64], [128]]
lr_multiplier = cpu_schedule(train, optimizer)
