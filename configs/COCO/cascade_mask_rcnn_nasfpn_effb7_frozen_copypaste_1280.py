# EfficientNet-B7, frozen, Cascade Mask R-CNN + NAS-FPN + Copy-Paste at 1280 px: the reference
# B7 detector, tensorflow/tpu models/official/detection/projects/copy_paste/configs/
# cascade_maskrcnn_effb7_nasfpn_1280.yaml, with the trunk frozen as "Proper Reuse" does:
#   nasfpn: num_repeats 5, fpn_feat_dims 256, block_fn bottleneck (outputs 4 x 256 = 1024 wide),
#     use_sum_for_combination, activation swish, init_drop_connect_rate 0.2
#   anchor: anchor_size 4, num_scales 3 (9 anchors per position on P3-P7)
#   rpn_head: 2 convs + BN; frcnn_head: 4 convs + 2 fcs + BN; mrcnn_head: 4 convs + BN;
#     batch_norm_activation: sync BN, ReLU in the heads
#   roi_sampling: fg_iou_thresh 0.6, cascade_iou_thresholds [0.7, 0.8]
#   train: batch 256, 180000 steps, LR 0.32 (warmup 1000 steps from 0.0032), x0.1 at 162000,
#     171000 and 175500; l2 4e-5; LSJ 0.1-2.0 at 1280; copy_paste
# Whether "Proper Reuse" trained its frozen B7 on exactly this schedule is not stated in the
# material available here (unverified). TF's BN momentum 0.997 / epsilon 1e-4 are not
# reproduced (detectron2 defaults). ImageNet weights for the trunk do not ship offline.
from freezedet.config import use_trunk

from ..common.data.coco_lsj_copypaste import dataloader
from ..common.models.cascade_heads import COPY_PASTE_B7_CASCADE_STAGES, use_cascade_stages
from ..common.models.cascade_mask_rcnn_nasfpn import model
from ..common.models.reference_heads import REFERENCE_NORM, use_reference_heads
from ..common.optim import SGD as optimizer
from ..common.reference import reference_nasfpn
from ..common.schedule import REF_COPYPASTE_B7, step_schedule
from ..common.train import train

image_size = 1280
use_trunk(model, dataloader, train, "effb7", "frozen")
reference_nasfpn(model, num_repeats=5, activation="swish")
model.backbone.update(out_channels=1024, block="bottleneck", combine="sum", drop_connect_rate=0.2)
model.proposal_generator.anchor_generator.sizes = [
    [4 * 2**level * 2 ** (k / 3) for k in range(3)] for level in range(3, 8)
]
use_cascade_stages(model.roi_heads, COPY_PASTE_B7_CASCADE_STAGES)
use_reference_heads(model, activation="relu", rpn_conv_dims=(256, 256), mask_norm=REFERENCE_NORM)

dataloader.train.mapper.augmentations.image_size = image_size
dataloader.test.mapper.augmentations[0].short_edge_length = image_size
dataloader.test.mapper.augmentations[0].max_size = image_size
dataloader.train.total_batch_size = 256

max_iter = 180000
train.max_iter = max_iter
train.eval_period = max_iter // 12
train.checkpointer.period = max_iter // 24
optimizer.lr = 0.32
optimizer.weight_decay = 4e-5
lr_multiplier = step_schedule(
    max_iter, warmup_iters=1000, milestones=REF_COPYPASTE_B7, warmup_factor=0.0032 / 0.32
)
