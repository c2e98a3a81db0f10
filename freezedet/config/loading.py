"""Loading a LazyConfig the way every freezedet tool does: a path or a shipped config name,
the trunk and mode selection (``trunk.name=`` / ``trunk.mode=``), ``key=value`` overrides checked against the config (:mod:`freezedet.config.keys`), and the
defaults that depend on the file (output directory) and the machine (device)."""

import os

import torch

from detectron2.config import LazyConfig

from ..model_zoo import get_config_file
from .keys import check_call_arguments, check_override_keys
from .trunks import run_output_dir, select_trunk_and_mode

__all__ = ["default_output_dir", "load_config", "resolve_config_file"]


def default_output_dir(config_file: str) -> str:
    """``./output/<config path below configs/, without .py>``: runs of different configs never
    collide."""
    path = os.path.abspath(config_file)
    parts = path.split(os.sep)
    if "configs" in parts:
        rel = os.sep.join(parts[len(parts) - parts[::-1].index("configs") :])
    else:
        rel = os.path.basename(path)
    return os.path.join("output", os.path.splitext(rel)[0])


def resolve_config_file(config_file: str) -> str:
    """A path as given, or else a config shipped with freezedet (``"DeepForest/....py"``)."""
    return config_file if os.path.exists(config_file) else get_config_file(config_file)


def load_config(config_file: str, overrides=()):
    """Load a LazyConfig, apply ``key=value`` overrides (unknown keys, and LazyCall arguments
    their target does not take, are errors: :mod:`freezedet.config.keys`; ``trunk.name=`` /
    ``trunk.mode=`` first: :func:`freezedet.config.trunks.select_trunk_and_mode`), resolve
    defaults that depend on the file and its trunk (output dir) and the machine (device)."""
    config_file = resolve_config_file(config_file)
    cfg = LazyConfig.load(config_file)
    overrides = select_trunk_and_mode(cfg, overrides, config_file)
    check_override_keys(cfg, overrides, config_file)
    cfg = LazyConfig.apply_overrides(cfg, list(overrides))
    check_call_arguments(cfg, config_file)
    if "train" not in cfg:  # a data-only config (e.g. for tools/visualize_data.py)
        return cfg
    if cfg.train.get("output_dir") is None:
        cfg.train.output_dir = run_output_dir(cfg, default_output_dir(config_file))
    if cfg.train.get("device") is None:
        cfg.train.device = "cuda" if torch.cuda.is_available() else "cpu"
    return cfg
