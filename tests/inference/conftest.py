"""Checkpoints for prediction / export tests: the shipped recipes with 64-channel necks, the
real ImageNet Lite0 trunk and seeded random heads, saved as a training run would save them."""

import os

import pytest
import torch

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import instantiate
from freezedet.engine import load_config
from freezedet.model_zoo import get_config_file

SMALL = ("model.backbone.out_channels=64", "train.device=cpu")
# name: (recipe, extra overrides); the mask head runs on every detection: 20, of 64 channels
RECIPES = {
    "fpn": ("DeepForest/faster_rcnn_fpn.py", ()),
    "cascade_nasfpn": ("DeepForest/cascade_rcnn_nasfpn.py", ()),
    "mask_fpn": (
        "LabelmeVOC/mask_rcnn_fpn.py",
        (
            "model.roi_heads.box_predictor.test_topk_per_image=20",
            "model.roi_heads.mask_head.conv_dims=[64,64,64,64,64]",
        ),
    ),
}


def overrides(name: str) -> list:
    return list(SMALL) + list(RECIPES[name][1])


def save_checkpoint(name: str, path: str) -> str:
    cfg = load_config(get_config_file(RECIPES[name][0]), overrides(name))
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    DetectionCheckpointer(model).load(cfg.train.init_checkpoint)  # the real ImageNet trunk
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save({"model": model.state_dict(), "iteration": 0}, path)
    return path


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """{name: (config file, overrides, checkpoint path)}, checkpoints written on first use."""
    root = tmp_path_factory.mktemp("inference_checkpoints")
    made = {}

    def get(name):
        if name not in made:
            path = save_checkpoint(name, str(root / name / "model_final.pth"))
            made[name] = (get_config_file(RECIPES[name][0]), overrides(name), path)
        return made[name]

    return get
