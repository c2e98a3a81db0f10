"""Classifier weights from a local file into a timm trunk, with a key-match report.

Nothing is downloaded: ``weights`` is a path to a ``.pth`` / ``.bin`` (``torch.save`` of a state
dict, or of a dict holding one under ``state_dict`` / ``model``) or a ``.safetensors`` file, e.g.
one saved from ``timm.create_model(name, pretrained=True).state_dict()`` on a machine with
internet, or the ``model.safetensors`` of the model's Hugging Face hub repository.

The file goes through the timm model's own checkpoint filter (``checkpoint_filter_fn`` of the
model's timm module) where there is one: it converts the original DINOv2 / OpenAI CLIP /
OpenCLIP / EVA / ConvNeXt layouts to timm's and resamples position embeddings to the model's
grid. Then every key is matched by name and shape: a shape mismatch is an error naming the keys;
missing and unexpected keys are counted and logged (a classifier head the trunk does not have is
"unexpected"; that is expected).
"""

import logging
import sys
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import torch
from torch import nn

__all__ = ["WeightsReport", "load_timm_weights", "weights_file"]

logger = logging.getLogger(__name__)


@dataclass
class WeightsReport:
    """What loading a weights file did: matched / missing / unexpected keys."""

    path: str
    matched: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.path}: {len(self.matched)} keys matched, {len(self.missing)} missing, "
            f"{len(self.unexpected)} unexpected"
            + (f" (missing e.g. {self.missing[:5]})" if self.missing else "")
            + (f" (unexpected e.g. {self.unexpected[:5]})" if self.unexpected else "")
        )


def weights_file(weights: Optional[str], timm_kwargs: Dict) -> Optional[str]:
    """The weights path: ``weights``, or timm's ``pretrained_cfg_overlay=dict(file=...)``."""
    overlay = (timm_kwargs or {}).get("pretrained_cfg_overlay") or {}
    file = overlay.get("file")
    if weights and file and weights != file:
        raise ValueError(f"two weights files given: weights={weights!r} and overlay file={file!r}")
    return weights or file


def _filter_fn(model: nn.Module) -> Optional[Callable]:
    # timm keeps each family's converter next to the model class
    return getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)


def load_timm_weights(
    model: nn.Module,
    path: str,
    *,
    filter_model: Optional[nn.Module] = None,
    key_map: Optional[Callable[[str], Optional[str]]] = None,
) -> WeightsReport:
    """Load a local weights file into ``model`` (in place); returns the key-match report.

    Args:
        model (nn.Module): the module receiving the weights.
        path (str): a ``.pth`` / ``.bin`` / ``.safetensors`` file.
        filter_model (nn.Module or None): the timm classifier whose checkpoint filter applies
            (default: ``model`` itself); a ``features_only`` wrapper passes the full model.
        key_map (callable or None): maps a filtered checkpoint key to a ``model`` key (None:
            drop it); identity when not given.
    """
    from timm.models import load_state_dict

    state = load_state_dict(path, use_ema=False)
    ref = filter_model if filter_model is not None else model
    fn = _filter_fn(ref)
    if fn is not None:
        state = fn(state, ref)
    if key_map is not None:
        state = {key_map(k): v for k, v in state.items() if key_map(k) is not None}
    own = model.state_dict()
    report = WeightsReport(path=path)
    mismatched = []
    for k, v in state.items():
        if k not in own:
            report.unexpected.append(k)
        elif tuple(v.shape) != tuple(own[k].shape):
            mismatched.append(f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}")
        else:
            report.matched.append(k)
    if mismatched:
        raise ValueError(
            f"{path} does not fit {type(ref).__name__}: {len(mismatched)} shape mismatches, e.g. "
            f"{mismatched[:5]}. Is it the checkpoint of this model (size, patch, depth)?"
        )
    report.missing = [k for k in own if k not in state]
    with torch.no_grad():
        model.load_state_dict({k: state[k] for k in report.matched}, strict=False)
    logger.info(f"Loaded trunk weights from {report.summary()}")
    return report
