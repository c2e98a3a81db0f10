"""Configs shipped with freezedet, like ``detectron2.model_zoo`` for detectron2's."""

import os

from detectron2.config import LazyConfig

from .utils.errors import UserFileNotFoundError

__all__ = ["configs_root", "get_config_file", "get_config"]


def configs_root() -> str:
    """``freezedet/configs`` in an installed package, else the source checkout's ``configs/``."""
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (
        os.path.join(here, "configs"),
        os.path.join(os.path.dirname(here), "configs"),
    ):
        if os.path.isdir(candidate):
            return candidate
    raise FileNotFoundError(
        f"freezedet's configs/ folder was found neither in {here} nor beside it"
    )


def get_config_file(config_path: str) -> str:
    """Absolute path of a shipped config, e.g. ``"DeepForest/faster_rcnn_fpn.py"``."""
    path = os.path.join(configs_root(), config_path)
    if not os.path.isfile(path):
        raise UserFileNotFoundError(
            f"{config_path!r} is not a config shipped with freezedet (looked for {path}). "
            f"Available: see {configs_root()}"
        )
    return path


def get_config(config_path: str):
    """Load a shipped LazyConfig (an ``omegaconf.DictConfig``)."""
    return LazyConfig.load(get_config_file(config_path))
