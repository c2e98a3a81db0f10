# AlignDet fine-tuning that takes only the pre-trained neck and RPN; the RoI box head starts
# fresh (on DeepForest the pre-trained box head hurt: docs/results/aligndet_deepforest.md).
from .faster_rcnn_fpn_effl0_frozen_aligndet import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

train.aligndet_transfer = ["neck", "rpn"]
