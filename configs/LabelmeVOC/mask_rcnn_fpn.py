# Mask R-CNN + FPN on labelme's VOC photos (masks), CPU-sized. Trunk and mode are overrides
# (default: the frozen ImageNet EfficientNet-Lite0), e.g. `trunk.mode=finetune`.
from freezedet.config import use_trunk

from ..common.cpu_recipe import cpu_schedule
from ..common.data.labelme_voc import dataloader
from ..common.models.mask_rcnn_fpn import model
from ..common.optim import SGD as optimizer
from ..common.train import train

trunk = dict(name="effl0", mode="frozen")
use_trunk(model, dataloader, train, **trunk)

model.roi_heads.num_classes = 20  # VOC classes
model.roi_heads.batch_size_per_image = 128  # COCO: 512
model.roi_heads.box_pooler.sampling_ratio = 2
model.roi_heads.box_predictor.test_topk_per_image = 300
model.proposal_generator.post_nms_topk = (1000, 300)
model.proposal_generator.anchor_generator.sizes = [[32], [64], [128], [256]]
lr_multiplier = cpu_schedule(train, optimizer, max_iter=100)
