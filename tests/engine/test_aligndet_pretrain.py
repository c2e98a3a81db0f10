"""AlignDet pre-training through freezedet.engine (tools/train_net.py's main): momentum EMA
updates, --resume restores the momentum copy, a detector fine-tuning config loads the
pre-training checkpoint with an exact transfer log."""

import logging
import os

import numpy as np
import pytest
import torch

from detectron2.config import instantiate
from detectron2.data import DatasetCatalog

from freezedet.data.proposals import ProposalCache
from freezedet.checkpoint import AtomicDetectionCheckpointer, load_init_weights
from freezedet.engine import argument_parser, load_config, main
from freezedet.engine.ema import cosine_momentum
from freezedet.model_zoo import get_config_file

PRETRAIN = get_config_file("DeepForest/aligndet_pretrain_faster_rcnn_fpn_effl0.py")
FINETUNE = get_config_file("DeepForest/faster_rcnn_fpn_effl0_frozen_aligndet.py")
SIZE = 128
# narrow neck and box head: small checkpoints, CPU-cheap steps, same structure
NARROW = [
    "backbone.out_channels=64",
    "roi_heads.box_head.fc_dims=[64,64]",
    "roi_heads.box_predictor.input_shape.channels=64",
]


def _cache(dataset, path):
    """Ground-truth boxes as 'proposals': cheap and deterministic."""
    records = DatasetCatalog.get(dataset)
    cache = ProposalCache(path, params={}, dataset=dataset, num_images=len(records))
    for r in records:
        boxes = np.asarray([a["bbox"] for a in r["annotations"]], np.float32)
        cache.add(r["image_id"], boxes=boxes, height=r["height"], width=r["width"])
    cache.save()


def _args(dataset, cache, out, flags=(), opts=()):
    base = [
        "train.init_checkpoint=",
        f"train.output_dir={out}",
        "train.log_period=1",
        "train.seed=0",
        "train.checkpointer.period=1",
        "train.checkpointer.max_to_keep=10",
        f"dataloader.proposals.dataset={dataset}",
        f"dataloader.proposals.output={cache}",
        "dataloader.train.num_workers=0",
        f"dataloader.train.mapper.augmentations.0.target_height={SIZE}",
        f"dataloader.train.mapper.augmentations.0.target_width={SIZE}",
        f"dataloader.train.mapper.augmentations.1.crop_size=[{SIZE},{SIZE}]",
        "dataloader.train.mapper.max_proposals=8",
        "model.detector.roi_heads.batch_size_per_image=32",
        "model.detector.proposal_generator.post_nms_topk=[100,50]",
        *(f"model.detector.{o}" for o in NARROW),
        "model.projector_hidden_dim=128",
    ]
    return argument_parser().parse_args([*flags, "--config-file", PRETRAIN, *base, *opts])


def _load(out, name):
    return torch.load(os.path.join(out, name), weights_only=False)["model"]


@pytest.fixture(scope="module")
def pretrained(synthetic_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("aligndet")
    cache, out = str(root / "proposals.json"), str(root / "run")
    _cache(synthetic_dataset[0], cache)
    main(_args(synthetic_dataset[0], cache, out, opts=["train.max_iter=3"]))
    return synthetic_dataset[0], cache, out


def test_momentum_is_ema_of_online(pretrained):
    _, _, out = pretrained
    ck0, ck1 = _load(out, "model_0000000.pth"), _load(out, "model_0000001.pth")
    m = cosine_momentum(0.996, 2, 3)  # the update after iteration 1 of 3
    for key in (
        "backbone.fpn_lateral3.weight",
        "roi_heads.box_head.fc1.weight",
        "projector.0.bias",
    ):
        expected = m * ck0["momentum." + key] + (1 - m) * ck1[key]
        assert torch.allclose(ck1["momentum." + key], expected, atol=1e-6), key
        assert not torch.equal(ck1["momentum." + key], ck1[key]), key
    trunk = [k for k in ck1 if k.startswith("backbone.bottom_up.")]
    assert trunk
    for k in trunk:  # frozen trunk: online, momentum and first checkpoint identical
        assert torch.equal(ck1[k], ck0[k]) and torch.equal(ck1["momentum." + k], ck1[k]), k


def test_resume_restores_momentum(pretrained):
    dataset, cache, out = pretrained
    final = _load(out, "model_final.pth")
    cfg = load_config(PRETRAIN, _args(dataset, cache, out).opts)
    model = instantiate(cfg.model)
    AtomicDetectionCheckpointer(model, out).resume_or_load("", resume=True)
    for k, v in model.momentum.state_dict().items():
        assert torch.equal(v, final["momentum." + k]), k
    # --resume one more iteration: the last update has momentum 1, so the restored copy is
    # kept exactly (a reset to the online weights at start would show here)
    main(_args(dataset, cache, out, flags=["--resume"], opts=["train.max_iter=4"]))
    resumed = _load(out, "model_final.pth")
    key = "momentum.backbone.fpn_lateral3.weight"
    assert torch.equal(resumed[key], final[key])
    assert not torch.equal(resumed[key], resumed["backbone.fpn_lateral3.weight"])


def test_finetune_config_transfers_with_log(pretrained, synthetic_run_opts, caplog):
    _, _, out = pretrained
    ckpt = os.path.join(out, "model_final.pth")
    opts = [*synthetic_run_opts, *(f"model.{o}" for o in NARROW), f"train.init_checkpoint={ckpt}"]
    cfg = load_config(FINETUNE, opts)
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    cls_before = model.roi_heads.box_predictor.cls_score.weight.detach().clone()
    with caplog.at_level(logging.INFO):
        checkpointer = load_init_weights(model, cfg.train.init_checkpoint)
    report = checkpointer.transfer_report
    src = _load(out, "model_final.pth")
    t = report["transferred"]
    assert len(t["neck"]) == 12 and len(t["rpn"]) == 6 and len(t["trunk"]) > 100
    assert sorted(t["roi_heads"]) == sorted(
        f"roi_heads.{m}.{p}"
        for m in ("box_head.fc1", "box_head.fc2", "box_predictor.bbox_pred")
        for p in ("weight", "bias")
    )
    assert sorted(report["reinitialized"]) == [
        "roi_heads.box_predictor.cls_score.bias",
        "roi_heads.box_predictor.cls_score.weight",
    ]
    assert set(report["skipped"]) == {"momentum", "projector"}, report["skipped"]
    sd = model.state_dict()
    for keys in t.values():
        for k in keys:
            assert torch.equal(sd[k], src[k]), k
    assert torch.equal(model.roi_heads.box_predictor.cls_score.weight, cls_before)
    text = caplog.text
    assert "AlignDet checkpoint -> detector: transferred trunk" in text
    assert "transferred neck (12): backbone.fpn_lateral3.weight" in text
    assert "re-initialised (2): roi_heads.box_predictor.cls_score.weight" in text
