# Long-tail stage 2 with the federated loss (sigmoid CE over the batch's classes + 50 classes
# sampled by image count ** 0.5; Zhou et al. 2021), otherwise as the _stage2_cb recipe (box
# classifiers only). Repeat-factor sampling back on (stage 1's t = 0.001): Detic trains the
# federated loss with RFS; the loss samples negatives, it does not re-weight positives.
from .cascade_mask_rcnn_nasfpn_r50_frozen_copypaste_72ep_stage2_cb import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

for _p in model.roi_heads.box_predictors:
    _p.loss, _p.class_balance_beta = "federated", 0.0
dataloader.train.sampler.repeat_factors.repeat_thresh = 0.001
