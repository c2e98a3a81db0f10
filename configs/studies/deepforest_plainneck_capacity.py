# The detector-capacity ablation of "Proper Reuse" on DeepForest: Faster R-CNN with a plain neck
# of 1, 2 or 4 stacked conv layers per level (and FPN for reference) on a frozen or fine-tuned
# EfficientNet-Lite0, 2 seeds, 300 iterations (results: docs/results/plainneck_capacity/). Each run
# is a base recipe + `trunk.name=effl0 trunk.mode=<mode>` + the overrides below.
#
#     python tools/transfer_study.py configs/studies/deepforest_plainneck_capacity.py
from freezedet.analysis.study import schedule_overrides

study = dict(
    recipes={
        "plain1": "DeepForest/faster_rcnn_plainneck1.py",
        "plain2": "DeepForest/faster_rcnn_plainneck2.py",
        "plain4": "DeepForest/faster_rcnn_plainneck4.py",
        "fpn": "DeepForest/faster_rcnn_fpn.py",
    },
    backbones=["effl0"],
    modes=["frozen", "finetune"],
    schedules={"300it": dict(overrides=schedule_overrides(300, warmup_iters=50))},
    seeds=[0, 1],
    overrides=["train.eval_period=100", "train.checkpointer.period=100"],
)
