# "Proper Reuse" Table 3 on DeepForest (issue 29, table 1): frozen vs fine-tuned ImageNet
# EfficientNet-Lite0 under three detectors of rising capacity, FPN, NAS-FPN and Cascade NAS-FPN,
# all on P2-P6 with the converged FPN recipe's data (D4 views, feature cache for frozen trunks),
# LR (0.0025 at batch 2), 1500-iteration schedule (86 epochs of the 35 training tiles, the
# reference milestones 2/3 and 17/18) and evaluation every 150 iterations, then 8-view TTA.
# Results: docs/results/proper_reuse_deepforest.md.
#
#     python tools/transfer_study.py configs/studies/deepforest_proper_reuse.py
study = dict(
    recipes={
        "fpn": "DeepForest/faster_rcnn_fpn_p2.py",
        "nasfpn": "DeepForest/faster_rcnn_nasfpn_p2.py",
        "cascade_nasfpn": "DeepForest/cascade_rcnn_nasfpn_p2.py",
    },
    backbones=["effl0"],
    modes={
        "frozen": dict(mode="frozen"),
        # the recipes cache the frozen trunk's features; trunk.mode=finetune drops the cache
        # (freezedet.config.use_trunk), the override says so explicitly in each run's command
        "finetune": dict(
            mode="finetune", overrides=["model.backbone.bottom_up.feature_cache=null"]
        ),
    },
    seeds=[0, 1, 2],
    overrides=["train.checkpointer.max_to_keep=2"],
)
