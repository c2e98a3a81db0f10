# Faster R-CNN + FPN for your own COCO-format data (docs/getting_started.md). A generic start,
# tuned to no dataset; each choice is printed when a run starts. Set the json files / image
# folders and the number of classes in your config. Trunk and mode are overrides (default: the
# frozen ImageNet EfficientNet-Lite0), e.g. `trunk.name=effl2 trunk.mode=finetune`.
from freezedet.config import use_trunk

from ..common.data.coco_json import dataloader
from ..common.models.faster_rcnn_fpn import model
from ..common.optim import SGD as optimizer
from ..common.schedule import step_schedule
from ..common.train import train

trunk = dict(name="effl0", mode="frozen")
use_trunk(model, dataloader, train, **trunk)
# must equal the json's category count (a mismatch stops the run at start)
model.roi_heads.num_classes = 1
# anchors: the model file's 32-256 px on p3-p6, aspect ratios 0.5 / 1 / 2 (COCO-like objects)
model.roi_heads.box_predictor.test_topk_per_image = 1000  # AP's count: the evaluator's "auto"
train.max_iter = 1000
train.checkpointer.period = 500
train.eval_period = 0  # at the end
train.clip_grad.enabled = True
train.clip_grad.clip_value = 10.0
optimizer.lr = 0.01  # batch 2
lr_multiplier = step_schedule(train.max_iter, warmup_iters=100)
