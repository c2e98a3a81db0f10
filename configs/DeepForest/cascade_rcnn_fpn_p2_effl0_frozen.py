# The DeepForest recipe that meets the accuracy targets (docs/results/deepforest_convergence.md,
# run H at 2x): the converged Faster R-CNN recipe (faster_rcnn_fpn_p2.py: the frozen
# ImageNet EfficientNet-Lite0, P2-P6 FPN, the reference LR and milestones) with
#   1. Cascade R-CNN heads, 3 RoI stages at IoU 0.5 / 0.6 / 0.7;
#   2. scale and colour jitter on top of the 8 flips / rotations (so no feature cache);
#   3. test-time augmentation over the 8 flips / rotations, fused (evaluated after training):
#      the Faster R-CNN recipe's `tta`, imported with it;
#   4. twice its schedule: 3000 iterations.
# Measured at 3000 iterations: val AP 13.8 / AP50 42.5 / AP75 4.1 without TTA, **21.4 / 56.0 /
# 10.7 with it** (TTA at 2400 / 2700 / 3000: 20.9 / 21.1 / 21.4 AP).
import detectron2.data.transforms as T
from detectron2.config import LazyCall as L

from freezedet.data.transforms import RandomRot90

from ..common.data.deepforest import colour_jitter, scale_jitter
from ..common.models.cascade_heads import CASCADE_STAGES, make_cascade_roi_heads
from ..common.schedule import REF_72EP, step_schedule
from .faster_rcnn_fpn_p2 import dataloader, model, optimizer, train, tta

# 1. Cai & Vasconcelos's (and detectron2's) 0.5 / 0.6 / 0.7, not the backbone_reuse configs'
#    0.5 / 0.7 / 0.8 (configs/common/models/cascade_heads.py): at val AP75 ~3 a stage trained at
#    IoU 0.8 would see almost no positives on these crowns (matched val IoU ~0.6).
make_cascade_roi_heads(model.roi_heads, stages=CASCADE_STAGES)
# <= 61 trees per tile: 300 detections per tile, as the Faster R-CNN recipe
for _predictor in model.roi_heads.box_predictors:
    _predictor.test_topk_per_image = 300

# 2. A mild scale jitter (x0.8-1.25, not the reference LSJ's 0.1-2.0 that "Proper Reuse" trains
#    COCO with, configs/common/data/coco_lsj.py line 25: at x0.1 these 17-73 px crowns would be
#    2-7 px; the range of the AlignDet views, configs/common/data/deepforest_aligndet.py) and
#    brightness / contrast / saturation (+-20 %: lighting and season differ between the 4 source
#    images). Measured alone (run H vs run F) it moved val AP by -0.5 and AP50 by -3.7, AP75
#    +0.9; it is kept because the TTA result above was measured with it. Continuous jitter makes
#    every view new, so the trunk's feature cache is off (the frozen trunk still runs without an
#    autograd graph).
dataloader.train.mapper.augmentations = [
    L(T.RandomFlip)(horizontal=True),
    L(RandomRot90)(),
    *scale_jitter(min_scale=0.8, max_scale=1.25),
    *colour_jitter(intensity=0.2),
]
model.backbone.bottom_up.feature_cache = None

# 4. The Faster R-CNN recipe's schedule doubled (171 epochs of the 35 training tiles), with the
#    same warmup and the reference milestones 2/3 and 17/18 (REF_72EP). The convergence
#    check, measured: at 1500 iterations this recipe scored 13.2 plain / 19.9 with TTA, at 3000
#    13.8 / 21.4 (+0.6 / +1.5 AP), so 1500 was short of converged with TTA. The 2x check of this
#    schedule (6000 iterations, milestones 4000 / 5666) ends at 14.8 plain / 21.0 with TTA
#    (+1.0 / -0.4 AP), so 3000 is converged with TTA, at the boundary without it
#    (docs/results/deepforest_convergence.md).
train.max_iter = 3000
train.eval_period = 300  # every 10 % of the schedule
train.checkpointer.period = 300
lr_multiplier = step_schedule(train.max_iter, warmup_iters=100, milestones=REF_72EP)
