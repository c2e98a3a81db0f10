"""The Copy-Paste + LSJ recipes train on CPU on real small data: LVIS stage 1 -> stage 2
(class-balanced loss, initialised from stage 1's derived output) on an LVIS-format json of
labelme photos + DeepForest tiles with long-tailed categories, evaluated with LVIS metrics; the
COCO Copy-Paste recipe on labelme's photos."""

import math
import os

import torch

from freezedet.data.copy_paste import CopyPasteDatasetMapper

from freezedet.checkpoint import AtomicDetectionCheckpointer
from freezedet.engine import argument_parser, load_config, main

STAGE1 = "LVIS/cascade_mask_rcnn_nasfpn_r50_frozen_copypaste_72ep.py"
STAGE2 = "LVIS/cascade_mask_rcnn_nasfpn_r50_frozen_copypaste_72ep_stage2_cb.py"
SMALL = [
    "train.max_iter=2",
    "train.seed=0",
    "train.log_period=1",
    "dataloader.train.total_batch_size=2",
    "dataloader.train.num_workers=0",
    "dataloader.test.num_workers=0",
    "dataloader.train.mapper.augmentations.image_size=192",
    "dataloader.test.mapper.augmentations.0.short_edge_length=192",
    "dataloader.test.mapper.augmentations.0.max_size=192",
    "model.backbone.num_repeats=1",
    "model.backbone.out_channels=32",
    "model.roi_heads.batch_size_per_image=32",
    "model.proposal_generator.post_nms_topk=[100,50]",
    "optimizer.lr=0.002",
    "model.roi_heads.box_predictors.2.test_topk_per_image=50",  # the last stage's is used
]


def _lvis_overrides(lt):
    return SMALL + [
        f"dataloader.train.dataset.json_file={lt['train']}",
        f"dataloader.train.dataset.image_root={lt['image_root']}",
        "dataloader.train.dataset.name=lt_lvis_train",
        f"dataloader.test.dataset.json_file={lt['val']}",
        f"dataloader.test.dataset.image_root={lt['image_root']}",
        "dataloader.test.dataset.name=lt_lvis_val",
        "dataloader.train.sampler.repeat_factors.repeat_thresh=0.5",
        f"model.roi_heads.num_classes={len(lt['classes'])}",
        "train.checkpointer.period=100",
    ]


def _run(config, opts):
    args = argument_parser().parse_args(["--config-file", config, "--num-gpus", "1", *opts])
    return main(args)


def test_lvis_stage1_then_class_balanced_stage2(
    long_tail_lvis, tmp_path, monkeypatch, build_trainer_parts
):
    monkeypatch.chdir(tmp_path)  # stage 2 finds stage 1 under ./output/LVIS/<stage 1 name>
    opts = _lvis_overrides(long_tail_lvis)
    # stage 1 through the trainer parts (no ImageNet download in tests: a random frozen trunk)
    cfg1 = load_config(STAGE1, opts + ["train.init_checkpoint="])
    model, _, trainer = build_trainer_parts(cfg1)
    trainer.train(0, 2)
    losses = trainer.storage.history("total_loss").values()
    assert len(losses) == 2 and all(math.isfinite(v) for v, _ in losses), losses
    stage1_out = cfg1.train.output_dir
    os.makedirs(stage1_out)
    AtomicDetectionCheckpointer(model, stage1_out).save("model_final")

    # stage 2 through train_net's main: loads stage 1, trains, evaluates with LVIS metrics
    cfg = load_config(STAGE2, opts)
    assert cfg.train.init_checkpoint == os.path.join(stage1_out, "model_final.pth")
    r2 = _run(STAGE2, opts + ["train.max_iter=1"])
    for task in ("bbox", "segm"):
        assert {"AP", "APr", "APc", "APf"} <= set(r2[task]), r2
        assert all(0.0 <= r2[task][k] <= 100.0 for k in ("APr", "APc", "APf")), r2[task]
    stage1_w = torch.load(os.path.join(stage1_out, "model_final.pth"), map_location="cpu")
    stage2_w = torch.load(
        os.path.join("output", STAGE2[:-3], "model_final.pth"), map_location="cpu"
    )
    w1, w2 = stage1_w["model"], stage2_w["model"]
    for s in range(3):  # the classifiers trained ...
        key = f"roi_heads.box_predictor.{s}.cls_score.weight"
        assert not torch.equal(w1[key], w2[key]), key
    # ... and nothing else did, BN statistics included (train.trainable = the classifiers)
    for key in (
        "roi_heads.box_predictor.0.bbox_pred.weight",
        "roi_heads.box_head.0.fcs.0.weight",
        "roi_heads.box_head.0.fc_norms.0.running_mean",
        "proposal_generator.rpn_head.convs.0.weight",
        "backbone.laterals.0.norm.running_var",
    ):
        assert torch.equal(w1[key], w2[key]), key
    # stage 2 read the class instance counts (Cui et al.'s samples) of its training data and
    # saved them; the image counts are not needed by the class-balanced softmax
    records = long_tail_lvis["records"]
    instances = [
        float(sum(a["category_id"] == c for r in records for a in r["annotations"]))
        for c in range(len(long_tail_lvis["classes"]))
    ]
    counts = w2["roi_heads.box_predictor.0.class_instance_counts"]
    assert counts.tolist() == instances, (counts, instances)
    assert w2["roi_heads.box_predictor.0.class_image_counts"].sum() == 0


def test_coco_copypaste_recipe_trains_on_labelme(tmp_path, build_trainer_parts):
    opts = SMALL + [
        "train.init_checkpoint=",
        f"train.output_dir={tmp_path}",
        "dataloader.train.dataset.names=labelme_voc_train",
        "dataloader.test.dataset.names=labelme_voc_train",
        "model.roi_heads.num_classes=20",
    ]
    cfg = load_config("COCO/cascade_mask_rcnn_nasfpn_r50_frozen_copypaste_72ep.py", opts)
    model, _, trainer = build_trainer_parts(cfg)
    trainer.train(0, 2)
    losses = trainer.storage.history("total_loss").values()
    assert len(losses) == 2 and all(math.isfinite(v) for v, _ in losses), losses
    assert cfg.dataloader.train.mapper._target_ is CopyPasteDatasetMapper
    assert cfg.dataloader.train.mapper.source == "labelme_voc_train"
