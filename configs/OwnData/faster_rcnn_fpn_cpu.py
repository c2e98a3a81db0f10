# faster_rcnn_fpn.py sized for a CPU (2 cores): smaller images (shortest side 448 at test,
# 358-538 in training), fewer RoIs and test proposals, and common/cpu_recipe.py's short schedule
# (600 iterations at batch 2, checkpoints every 100). Measured on 35 images of 400 px
# (docs/results/own_data_cpu.md): val AP50 35.4 after 39 minutes on 2 cores shared with other jobs.
# Everything else (data keys, trunk overrides, anchors) is faster_rcnn_fpn.py's; more iterations:
# `train.max_iter=N` (warmup and LR steps scale with it).
from ..common.cpu_recipe import cpu_schedule
from .faster_rcnn_fpn import dataloader, model, optimizer, train, trunk

dataloader.image_size = 448
model.roi_heads.batch_size_per_image = 128  # COCO: 512
model.proposal_generator.post_nms_topk = (1000, 300)  # test proposals: 300 instead of 1000
model.roi_heads.box_predictor.test_topk_per_image = 300
lr_multiplier = cpu_schedule(train, optimizer, max_iter=600)
