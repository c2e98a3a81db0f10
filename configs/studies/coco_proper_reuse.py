# A COCO-scale "Proper Reuse" study for a cluster: frozen / fine-tuned / scratch ResNet-50 under
# FPN, NAS-FPN and Cascade NAS-FPN, 72-epoch recipes, 2 seeds = 18 independent multi-GPU runs
# (each a base recipe + `trunk.name=r50 trunk.mode=<mode>`: SyncBN when the trunk trains).
# Fan out with one array job per shard into a shared directory, then collect once:
#
#     python tools/transfer_study.py configs/studies/coco_proper_reuse.py \
#         --output-dir /shared/studies/coco --num-gpus 8 --shard $SLURM_ARRAY_TASK_ID/18
#     python tools/transfer_study.py configs/studies/coco_proper_reuse.py \
#         --output-dir /shared/studies/coco --collect-only
study = dict(
    recipes={
        "fpn": "COCO/faster_rcnn_fpn_72ep.py",
        "nasfpn": "COCO/faster_rcnn_nasfpn_72ep.py",
        "cascade_nasfpn": "COCO/cascade_rcnn_nasfpn_72ep.py",
    },
    # top-1 from the trunk record (freezedet.config.TRUNKS): detectron2's MSRA R-50, 75.3
    backbones=["r50"],
    modes=["frozen", "finetune", "scratch"],
    seeds=[0, 1],
)
