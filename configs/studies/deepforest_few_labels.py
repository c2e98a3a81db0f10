# Few labels on DeepForest (issue 29, table 2): 10 %, 25 % and 100 % of the 35 training tiles
# (deterministic nested subsets: freezedet/data/deepforest.py), frozen vs fine-tuned
# EfficientNet-Lite0, on the FPN recipe and the Proper Reuse table's highest-capacity detector,
# 3 seeds. Every arm trains the recipes' 1500 iterations at batch 2 (3000 tile views: 86 epochs of
# the full split, ~350 of 25 % (9 tiles), ~860 of 10 % (4 tiles)), evaluated on the same 18 val
# tiles. The 100 % arms are table 1's runs (configs/studies/deepforest_proper_reuse.py): pass the
# same --output-dir and they are found finished and skipped.
#
#     python tools/transfer_study.py configs/studies/deepforest_few_labels.py \
#         --output-dir output/studies/deepforest_proper_reuse
from .deepforest_proper_reuse import study as _table1

study = dict(
    recipes={
        "fpn": "DeepForest/faster_rcnn_fpn_p2.py",
        "cascade_nasfpn": "DeepForest/cascade_rcnn_nasfpn_p2.py",
    },
    backbones=["effl0"],
    modes=_table1["modes"],  # frozen; finetune (without the feature cache)
    datasets={
        "default": dict(overrides=[]),
        "25pct": dict(overrides=["dataloader.train.dataset.names=deepforest_train_25pct"]),
        "10pct": dict(overrides=["dataloader.train.dataset.names=deepforest_train_10pct"]),
    },
    seeds=[0, 1, 2],
    overrides=_table1["overrides"],
)
