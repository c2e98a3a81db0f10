"""Every shipped config loads, survives LazyConfig.save + reload, and instantiates (shrunk)."""

import glob
import os

import pytest
import torch
from omegaconf import OmegaConf

from detectron2.config import LazyConfig, instantiate
from detectron2.utils.registry import locate
from freezedet.engine import default_output_dir, load_config
from freezedet.model_zoo import configs_root, get_config

ROOT = configs_root()
RECIPES = sorted(
    os.path.relpath(p, ROOT)
    for p in glob.glob(os.path.join(ROOT, "**", "*.py"), recursive=True)
    # studies/ hold transfer-study grids, not models (tests/analysis/test_study.py loads them)
    if not os.path.relpath(p, ROOT).startswith(("common", "studies"))
)
MODELS = sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "common", "models", "*.py"))
)


def _normalize(node):
    """Targets become 'module.qualname' strings after a yaml round trip; compare them as such."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "_target_":
                v = locate(v) if isinstance(v, str) else v
                v = f"{v.__module__}.{v.__qualname__}"
            out[k] = _normalize(v)
        return out
    if isinstance(node, list):
        return [_normalize(v) for v in node]
    return node


def test_there_are_configs():
    assert len(RECIPES) >= 3, RECIPES
    assert any(r.startswith("DeepForest") for r in RECIPES)


@pytest.mark.parametrize("name", RECIPES + MODELS)
def test_config_round_trip(name, tmp_path):
    cfg = get_config(name)
    path = str(tmp_path / "config.yaml")
    LazyConfig.save(cfg, path)
    reloaded = LazyConfig.load(path)
    a = _normalize(OmegaConf.to_container(cfg, resolve=False))
    b = _normalize(OmegaConf.to_container(reloaded, resolve=False))
    assert a == b


def _shrink(model_cfg):
    """Smaller RoI sampling so instantiation + a forward stay cheap on CPU."""
    rh = model_cfg.get("roi_heads")
    if rh is not None and "batch_size_per_image" in rh:
        rh.batch_size_per_image = 32


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_instantiates(name):
    cfg = load_config(os.path.join(ROOT, name))
    assert cfg.train.output_dir == default_output_dir(os.path.join(ROOT, name))
    assert cfg.train.output_dir.endswith(os.path.splitext(name)[0])
    _shrink(cfg.model)
    model = instantiate(cfg.model)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    n_opt = sum(p.numel() for g in optimizer.param_groups for p in g["params"])
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert n_opt == n_trainable, "optimizer must hold exactly the trainable parameters"
    sched = instantiate(cfg.lr_multiplier)
    assert 0 < sched(0.5) <= 1.0
    # SharedTrunkDetectors keeps its one trunk outside the detectors
    bottom_up = model.trunk if "shared_trunk" in name else model.backbone.bottom_up
    mode = getattr(bottom_up, "mode", None)
    # the trunk itself: not its adapters, nor a ViT's (always trained) simple-pyramid layers
    trunk = bottom_up._trunk_module() if hasattr(bottom_up, "_trunk_module") else bottom_up
    trunk_trainable = sum(
        p.requires_grad for n, p in trunk.named_parameters() if ".adapter" not in n
    )
    if "adapters" in name:
        assert bottom_up.num_adapters > 0, f"{name}: no adapters were added"
    if mode == "frozen":
        assert trunk_trainable == 0, f"{name}: frozen trunk has trainable parameters"
    elif mode in ("finetune", "scratch"):
        assert trunk_trainable > 0, f"{name}: {mode} trunk has no trainable parameters"


def test_output_dirs_are_distinct():
    dirs = [default_output_dir(os.path.join(ROOT, r)) for r in RECIPES]
    assert len(set(dirs)) == len(dirs)


@pytest.mark.parametrize("name", MODELS)
def test_model_files_instantiate(name):
    cfg = get_config(name)
    if "model" not in cfg:  # shared blocks (e.g. cascade_heads.py) define no model
        assert name.endswith("_heads.py"), f"{name} defines no `model`"
        return
    _shrink(cfg.model)
    model = instantiate(cfg.model)
    assert isinstance(model, torch.nn.Module)
    if "cascade" in name:
        assert len(model.roi_heads.box_predictor) == 3
    if "mask" in name:
        assert model.roi_heads.mask_on
