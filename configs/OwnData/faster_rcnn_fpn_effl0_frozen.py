# Faster R-CNN + FPN on the frozen ImageNet EfficientNet-Lite0 for your own COCO-format data
# (README "Your own data"). A generic start, tuned to no dataset; each choice is printed when a
# run starts. Set the json files / image folders and the number of classes in your config.
from ..common.backbones import use_backbone
from ..common.data.coco_json import dataloader
from ..common.models.faster_rcnn_fpn import model
from ..common.optim import SGD as optimizer
from ..common.schedule import step_schedule
from ..common.train import train

use_backbone(model, dataloader, train, "effl0", "frozen")
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
