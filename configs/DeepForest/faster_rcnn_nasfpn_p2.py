# "Proper Reuse" Table 3's middle detector on DeepForest: the converged FPN recipe
# (faster_rcnn_fpn_p2.py: the frozen ImageNet EfficientNet-Lite0, D4 augmentation with
# the feature cache, lr 0.0025, 1500 iterations, the reference milestones, 8-view TTA) with its
# FPN replaced by NAS-FPN. Everything else (levels, anchors, RoI heads, data, schedule) is the FPN
# recipe's, so the two differ only in the neck. Trunk and mode by override, e.g.
# `trunk.mode=finetune` (which drops the feature cache: it serves frozen trunks only). Measured
# in docs/results/proper_reuse_deepforest.md.
from detectron2.config import LazyCall as L

from freezedet.modeling.neck import NASFPN

from .faster_rcnn_fpn_p2 import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
    trunk,
    tta,
)

# NAS-FPN's searched cells (Ghiasi et al. 2019; the TF reference "Proper Reuse" trains with) on
# P2-P6 instead of the paper's P3-P7: the trees are 17-73 px and the FPN recipe's finest level is
# stride 4 (its point 1), so the necks compared share the levels the RPN and RoI heads read.
# min_level=2 runs the same cell graph one octave finer (freezedet/modeling/neck/nasfpn.py).
# 3 stacked blocks of width 128 (the paper: 7 of 256 on COCO): 128 is the FPN recipe's width, so
# the capacity added is the cells' depth, not width; 3 repeats because step time grows linearly
# with them, and 3 already hold 4.9x the FPN recipe's neck parameters (3.17M vs 0.65M; the results
# doc lists every arm's trainable parameters).
model.backbone = L(NASFPN)(
    bottom_up=model.backbone.bottom_up,
    in_features="${.bottom_up.out_features}",
    out_channels=128,
    num_repeats=3,
    norm="BN",
    activation="relu",
    min_level=2,
)
