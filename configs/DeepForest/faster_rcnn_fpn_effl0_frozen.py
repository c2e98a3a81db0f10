# Faster R-CNN + FPN on the frozen ImageNet EfficientNet-Lite0, DeepForest tiles, CPU-sized.
from ..common.data.deepforest import dataloader
from ..common.models.faster_rcnn_fpn import model
from ..common.optim import SGD as optimizer
from ..common.schedule import step_schedule
from ..common.train import train

model.roi_heads.num_classes = 1
# CPU-sized sampling: fewer RoIs per image than COCO's 512
model.roi_heads.batch_size_per_image = 128
model.roi_heads.box_pooler.sampling_ratio = 2
# trees are small: anchors one octave smaller than COCO's
model.proposal_generator.anchor_generator.sizes = [[16], [32], [64], [128]]
model.roi_heads.box_predictor.test_topk_per_image = 300

train.init_checkpoint = "freezedet://weights/tf_efficientnet_lite0.pth"
train.max_iter = 300
train.eval_period = 0
train.checkpointer.period = 100
train.log_period = 20
lr_multiplier = step_schedule(train.max_iter, warmup_iters=50)
optimizer.lr = 0.01
