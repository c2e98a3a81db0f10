"""Loading a LazyConfig the way every freezedet tool does: a path, a shipped config name or a
training run's directory (:func:`resolve_run`), the trunk and mode selection (``trunk.name=`` /
``trunk.mode=``), ``key=value`` overrides checked against the config
(:mod:`freezedet.config.keys`), and the defaults that depend on the file (output directory) and
the machine (device). A config that is, or imports, a recipe that was renamed or removed fails
with a one-line hint naming its replacement (:func:`renamed_config_hint`)."""

import os
import re
from typing import NamedTuple, Optional

import torch

from detectron2.config import LazyConfig

from ..model_zoo import configs_root, get_config_file
from ..utils.errors import UserFileNotFoundError
from .keys import check_call_arguments, check_override_keys
from .trunks import MODES, TRUNKS, run_output_dir, select_trunk_and_mode

__all__ = [
    "RENAMED_CONFIGS",
    "RunFiles",
    "default_output_dir",
    "load_config",
    "renamed_config_hint",
    "resolve_config_file",
    "resolve_run",
    "run_weights",
]

# Recipes removed without a rule-derived successor (see renamed_config_hint for the rule that
# covers the former <arch>_<trunk>_<mode> files): path below configs/ -> what replaced it.
RENAMED_CONFIGS = {
    "common/backbones.py": "freezedet.config.trunks (TRUNKS, use_trunk; trunk.name= overrides)",
    "COCO/cascade_rcnn_nasfpn_effb7_frozen_600ep.py": "COCO/cascade_rcnn_nasfpn_r50_frozen_600ep.py "
    "trunk.name=effb7 model.backbone.out_channels=384",
    "COCO/cascade_rcnn_nasfpn_r50_frozen_5stage_72ep.py": "COCO/cascade_rcnn_nasfpn_72ep.py with "
    "make_cascade_roi_heads(model.roi_heads, stages=CASCADE_STAGES + EXTRA_STAGES) "
    "(configs/common/models/cascade_heads.py)",
}

# <arch>_<trunk>_<mode>[_<suffix>].py: a file per trunk and mode, before trunks and modes
# became overrides of one recipe per architecture
_TRUNK_MODE_FILE = re.compile(
    r"^(?P<dir>.*/)?(?P<arch>.+?)_(?P<trunk>%s)_(?P<mode>%s)(?P<suffix>_.+)?\.py$"
    % ("|".join(map(re.escape, TRUNKS)), "|".join(MODES))
)
_MISSING_IMPORT = re.compile(r": (?P<path>\S+\.py) has to exist\.$")


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


def _below_configs(path: str) -> str:
    parts = os.path.normpath(path).split(os.sep)
    if "configs" in parts:
        return "/".join(parts[len(parts) - parts[::-1].index("configs") :])
    return "/".join(parts)


def renamed_config_hint(config_file: str) -> Optional[str]:
    """What replaced ``config_file`` (a path, or a name below ``configs/``) if it is a recipe
    freezedet renamed or removed; None otherwise. The former per-trunk files
    (``DeepForest/faster_rcnn_fpn_effl0_frozen.py``) are the recipe of their architecture with
    ``trunk.name=`` / ``trunk.mode=`` overrides; others are listed in :data:`RENAMED_CONFIGS`."""
    rel = _below_configs(config_file)
    if rel in RENAMED_CONFIGS:
        return f"{rel} was removed; use {RENAMED_CONFIGS[rel]}"
    m = _TRUNK_MODE_FILE.match(rel)
    if m is None:
        return None
    recipe = f"{m['dir'] or ''}{m['arch']}{m['suffix'] or ''}.py"
    if not os.path.isfile(os.path.join(configs_root(), recipe)):
        return None
    return (
        f"{rel} was renamed: use {recipe} trunk.name={m['trunk']} trunk.mode={m['mode']} (trunks "
        "and modes are overrides of one recipe per architecture: freezedet/config/trunks.py)"
    )


class RunFiles(NamedTuple):
    """A config and, for a training run, its weights (:func:`resolve_run`)."""

    config_file: str
    weights: Optional[str]


def run_weights(run_dir: str) -> str:
    """The weights of a training output directory: its ``model_final.pth``, else the checkpoint
    its ``last_checkpoint`` file names."""
    final = os.path.join(run_dir, "model_final.pth")
    if os.path.isfile(final):
        return final
    tag = os.path.join(run_dir, "last_checkpoint")
    if os.path.isfile(tag):
        with open(tag) as f:
            last = os.path.join(run_dir, f.read().strip())
        if os.path.isfile(last):
            return last
        raise UserFileNotFoundError(f"{tag} names {last}, which does not exist")
    raise UserFileNotFoundError(
        f"{run_dir} is a directory without model_final.pth or a last_checkpoint file: not a "
        "training output directory. Pass a checkpoint file (.pth) instead."
    )


def resolve_run(config_or_run: str) -> RunFiles:
    """A config file, a shipped config name, or a training run's output directory.

    A run directory (one holding the ``config.yaml`` that training wrote) gives its
    ``config.yaml`` (the full config with every override the run was trained with) and its
    weights (:func:`run_weights`; None if it holds no checkpoint yet); a config gives itself and
    no weights."""
    path = os.fspath(config_or_run)
    if os.path.isdir(path):
        config = os.path.join(path, "config.yaml")
        if not os.path.isfile(config):
            raise UserFileNotFoundError(
                f"{path} is a directory without config.yaml: not a training run's output "
                "directory (pass a config file, or the folder a run wrote config.yaml into)"
            )
        try:
            weights = run_weights(path)
        except FileNotFoundError:
            weights = None
        return RunFiles(config, weights)
    return RunFiles(resolve_config_file(path), None)


def resolve_config_file(config_file: str) -> str:
    """A path as given, or else a config shipped with freezedet (``"DeepForest/....py"``); a run
    directory gives its ``config.yaml``. A renamed recipe's name is an error naming its
    replacement."""
    if os.path.isdir(config_file):
        return resolve_run(config_file).config_file
    if os.path.exists(config_file):
        return config_file
    hint = renamed_config_hint(config_file)
    if hint:
        raise UserFileNotFoundError(f"config {config_file} does not exist: {hint}")
    return get_config_file(config_file)


def _load(config_file: str):
    try:
        return LazyConfig.load(config_file)
    except ImportError as e:
        m = _MISSING_IMPORT.search(str(e))
        hint = renamed_config_hint(m["path"]) if m else None
        if hint is None:
            raise
        raise ImportError(f"{config_file} imports {_below_configs(m['path'])}: {hint}") from e


def load_config(config_file: str, overrides=()):
    """Load a LazyConfig (a file, a shipped name or a run directory's ``config.yaml``), apply ``key=value`` overrides (unknown keys, and LazyCall arguments
    their target does not take, are errors: :mod:`freezedet.config.keys`; ``trunk.name=`` /
    ``trunk.mode=`` first: :func:`freezedet.config.trunks.select_trunk_and_mode`), resolve
    defaults that depend on the file and its trunk (output dir) and the machine (device)."""
    config_file = resolve_config_file(config_file)
    cfg = _load(config_file)
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
