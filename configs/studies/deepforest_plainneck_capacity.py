# The detector-capacity ablation of "Proper Reuse" on DeepForest: Faster R-CNN with a plain neck
# of 1, 2 or 4 stacked conv layers per level (and FPN for reference) on a frozen or fine-tuned
# EfficientNet-Lite0, 2 seeds, 300 iterations (results: docs/results/plainneck_capacity/).
#
#     python tools/transfer_study.py configs/studies/deepforest_plainneck_capacity.py
from freezedet.analysis.study import schedule_overrides

study = dict(
    recipes={
        "plain1": "DeepForest/faster_rcnn_plainneck1_{backbone}_{mode}.py",
        "plain2": "DeepForest/faster_rcnn_plainneck2_{backbone}_{mode}.py",
        "plain4": "DeepForest/faster_rcnn_plainneck4_{backbone}_{mode}.py",
        "fpn": "DeepForest/faster_rcnn_fpn_{backbone}_{mode}.py",
    },
    backbones={"effl0": dict(top1=75.1)},
    modes=["frozen", "finetune"],
    schedules={"300it": dict(overrides=schedule_overrides(300, warmup_iters=50))},
    seeds=[0, 1],
    overrides=["train.eval_period=100", "train.checkpointer.period=100"],
)
