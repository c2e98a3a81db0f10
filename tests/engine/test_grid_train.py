"""A CPU train + eval step for each detector family of the grid, on a frozen real-weights trunk:
losses finite, the trunk untouched (weights and BN statistics), every neck cell trained."""

import copy
import math

import pytest
import torch

from freezedet.checkpoint import AtomicDetectionCheckpointer
from freezedet.engine import do_test, load_config

CASES = {
    # the demo model on real DeepForest tiles (evaluated on 4 tiles to stay fast)
    "DeepForest/faster_rcnn_fpn.py": "deepforest",
    # the converged recipe: P2-P6, D4 views through the feature cache
    "DeepForest/faster_rcnn_fpn_p2.py": "deepforest",
    "DeepForest/faster_rcnn_nasfpn.py": "synthetic",
    "DeepForest/retinanet_nasfpn.py": "synthetic",
    "DeepForest/cascade_rcnn_nasfpn.py": "synthetic",
    "LabelmeVOC/cascade_mask_rcnn_nasfpn.py": "labelme",
}


def _overrides(name, data, tmp_path):
    opts = [
        f"train.output_dir={tmp_path}",
        "train.seed=0",
        "dataloader.train.num_workers=0",
        "dataloader.test.num_workers=0",
        "optimizer.lr=0.002",
    ]
    if data == "deepforest":
        opts += ["dataloader.test.dataset.names=deepforest_train_10pct"]
    if data == "synthetic":
        opts += [
            "dataloader.train.dataset.names=synthetic_train",
            "dataloader.test.dataset.names=synthetic_val",
        ]
    if "retinanet" in name:  # after 2 steps its scores are ~0.01: keep them to get an AP
        opts += ["model.test_score_thresh=0.0"]
    else:
        opts += [
            "model.roi_heads.batch_size_per_image=32",
            "model.proposal_generator.post_nms_topk=[100,50]",
        ]
    if "nasfpn" in name:  # small neck: the test checks wiring, not capacity
        opts += ["model.backbone.num_repeats=2", "model.backbone.out_channels=64"]
    return opts


@pytest.mark.parametrize("name", sorted(CASES))
def test_train_and_eval_step(name, synthetic_dataset, tmp_path, build_trainer_parts):
    cfg = load_config(name, _overrides(name, CASES[name], tmp_path))
    model, _, trainer = build_trainer_parts(cfg)
    AtomicDetectionCheckpointer(model).load(cfg.train.init_checkpoint)
    before = copy.deepcopy(model.state_dict())
    trainer.train(0, 2)
    losses = trainer.storage.history("total_loss").values()
    assert len(losses) == 2 and all(math.isfinite(v) for v, _ in losses), losses
    after = model.state_dict()
    trunk = [k for k in after if k.startswith("backbone.bottom_up.")]
    assert trunk and all(torch.equal(after[k], before[k]) for k in trunk), "trunk changed"
    assert all(not p.requires_grad for p in model.backbone.bottom_up.parameters())
    neck_weights = [
        k
        for k in after
        if k.startswith("backbone.") and k not in trunk and k.endswith("weight") and "norm" not in k
    ]
    unchanged = [k for k in neck_weights if torch.equal(after[k], before[k])]
    assert neck_weights and not unchanged, f"neck weights that did not train: {unchanged}"
    results = do_test(cfg, model)
    assert {"AP", "AP50", "AP75"} <= set(results["bbox"])
    assert 0.0 <= results["bbox"]["AP50"] <= 100.0
    if "mask" in name:
        assert {"AP", "AP50"} <= set(results["segm"])
