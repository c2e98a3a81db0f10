"""Every shipped config loads, survives LazyConfig.save + reload, and instantiates (shrunk); so
does every (recipe x trunk x mode) cell of the grid the recipes with a `trunk` offer."""

import glob
import os

import pytest
import torch
from omegaconf import OmegaConf

from detectron2.config import LazyConfig, instantiate
from detectron2.utils.registry import locate
from freezedet.config import MODES, TRUNKS, run_output_dir
from freezedet.engine import default_output_dir, load_config
from freezedet.model_zoo import configs_root, get_config

ROOT = configs_root()
RECIPES = sorted(
    os.path.relpath(p, ROOT)
    for p in glob.glob(os.path.join(ROOT, "**", "*.py"), recursive=True)
    # studies/ hold transfer-study grids, not models (tests/analysis/test_study.py loads them)
    if not os.path.relpath(p, ROOT).startswith(("common", "studies"))
)
# the recipes that take trunk.name= / trunk.mode= (they declare a `trunk`)
SELECTABLE = [r for r in RECIPES if "trunk" in get_config(r)]
# the trunks each selectable recipe is instantiated with, in every mode: all records on FPN, the
# transfer grid's seven on NAS-FPN and Cascade NAS-FPN, the recipe's own default elsewhere
_GRID_TRUNKS = ["effl0", "effl1", "effl2", "mnv2", "r50", "timmr50", "effb7"]
GRID_TRUNKS = {
    "DeepForest/faster_rcnn_fpn.py": list(TRUNKS),
    "DeepForest/faster_rcnn_nasfpn.py": _GRID_TRUNKS,
    "DeepForest/cascade_rcnn_nasfpn.py": _GRID_TRUNKS,
    # configs/studies/deepforest_{trunks,frozen_foundation}.py: the trunks with real weights offline
    "DeepForest/faster_rcnn_fpn_p2.py": [
        "effl0",
        "effl1",
        "effl2",
        "mnv2",
        "vits14focus",
    ],
}
GRID = [
    (r, t, m)
    for r in SELECTABLE
    for t in GRID_TRUNKS.get(r, [get_config(r).trunk.name])
    for m in MODES
]
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
    assert {"DeepForest/faster_rcnn_fpn.py", "COCO/faster_rcnn_fpn_72ep.py"} <= set(SELECTABLE)
    # a file name carries a trunk and a mode only where the recipe fixes them
    for r in SELECTABLE:
        assert not any(f"_{m}" in r for m in MODES), f"{r}: its mode is an override"


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


def _check_instantiates(cfg, name, mode):
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
    assert getattr(bottom_up, "mode", None) == mode
    # the trunk itself: not its adapters, nor a ViT's (always trained) simple-pyramid layers
    trunk = bottom_up._trunk_module() if hasattr(bottom_up, "_trunk_module") else bottom_up
    trunk_trainable = sum(
        p.requires_grad for n, p in trunk.named_parameters() if ".adapter" not in n
    )
    if "adapters" in name:
        assert bottom_up.num_adapters > 0, f"{name}: no adapters were added"
    if mode == "frozen":
        assert trunk_trainable == 0, f"{name}: frozen trunk has trainable parameters"
    else:
        assert trunk_trainable > 0, f"{name}: {mode} trunk has no trainable parameters"


def _fixed_mode(name):
    """The mode a recipe that fixes its trunk names in its file name (frozen if none)."""
    return next((m for m in MODES if f"_{m}" in name), "frozen")


@pytest.mark.parametrize("name", [r for r in RECIPES if r not in SELECTABLE])
def test_recipe_instantiates(name):
    cfg = load_config(os.path.join(ROOT, name))
    assert cfg.train.output_dir == default_output_dir(os.path.join(ROOT, name))
    assert cfg.train.output_dir.endswith(os.path.splitext(name)[0])
    _check_instantiates(cfg, name, _fixed_mode(name))


@pytest.mark.parametrize("name,trunk,mode", GRID)
def test_grid_cell_instantiates(name, trunk, mode):
    cfg = load_config(name, [f"trunk.name={trunk}", f"trunk.mode={mode}"])
    assert cfg.train.output_dir == os.path.join(
        default_output_dir(os.path.join(ROOT, name)), f"{trunk}_{mode}"
    )
    bottom_up = cfg.model.backbone.bottom_up
    assert trunk == "r50" or bottom_up.model_name == TRUNKS[trunk].model_name
    # a recipe's feature cache serves its frozen trunk only
    cached = get_config(name).model.backbone.bottom_up.get("feature_cache") is not None
    assert (bottom_up.get("feature_cache") is not None) == (cached and mode == "frozen")
    _check_instantiates(cfg, name, mode)


def test_output_dirs_are_distinct():
    fixed = [default_output_dir(os.path.join(ROOT, r)) for r in RECIPES if r not in SELECTABLE]
    cells = [
        run_output_dir(
            OmegaConf.create(dict(trunk=dict(name=t, mode=m))),
            default_output_dir(os.path.join(ROOT, r)),
        )
        for r in SELECTABLE
        for t in TRUNKS
        for m in MODES
    ]
    dirs = fixed + cells
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
