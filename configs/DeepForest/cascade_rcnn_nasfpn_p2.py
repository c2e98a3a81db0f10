# "Proper Reuse" Table 3's highest-capacity detector on DeepForest: the NAS-FPN P2-P6 recipe
# (faster_rcnn_nasfpn_p2.py, itself the converged FPN recipe with NAS-FPN as its neck)
# with Cascade R-CNN heads. Same data, feature cache, LR and 1500-iteration schedule as the FPN
# and NAS-FPN recipes, so the three differ only in neck and heads. Trunk and mode by override,
# e.g. `trunk.mode=finetune` (which drops the feature cache). Measured in
# docs/results/proper_reuse_deepforest.md.
from ..common.models.cascade_heads import CASCADE_STAGES, make_cascade_roi_heads
from .faster_rcnn_nasfpn_p2 import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
    trunk,
    tta,
)

# 3 stages at IoU 0.5 / 0.6 / 0.7, as the converged Cascade FPN recipe
# (cascade_rcnn_fpn_p2_effl0_frozen.py point 1 says why not the reference's 0.5 / 0.7 / 0.8)
make_cascade_roi_heads(model.roi_heads, stages=CASCADE_STAGES)
# <= 61 trees per tile: 300 detections per tile, as the FPN recipe
for _predictor in model.roi_heads.box_predictors:
    _predictor.test_topk_per_image = 300
