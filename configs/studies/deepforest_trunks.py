# Trunks on DeepForest (issue 29, table 3; Kornblith, Shlens, Le, "Do Better ImageNet Models
# Transfer Better?", CVPR 2019): detection AP against ImageNet top-1 on log-odds axes for every
# trunk with real ImageNet weights offline, EfficientNet-Lite0/1/2 and MobileNetV2 (top-1 from
# the trunk records, freezedet.config.TRUNKS), frozen and fine-tuned, on the converged FPN recipe
# (P2-P6, D4 views, feature cache for frozen trunks, 1500 iterations), 3 seeds. The Lite0 arms
# are table 1's runs: with the same --output-dir they are found finished and skipped.
#
#     python tools/transfer_study.py configs/studies/deepforest_trunks.py \
#         --output-dir output/studies/deepforest_proper_reuse
from .deepforest_proper_reuse import study as _table1

study = dict(
    recipes={"fpn": "DeepForest/faster_rcnn_fpn_p2.py"},
    backbones=["effl0", "effl1", "effl2", "mnv2"],
    modes=_table1["modes"],  # frozen; finetune (without the feature cache)
    seeds=[0, 1, 2],
    overrides=_table1["overrides"],
)
