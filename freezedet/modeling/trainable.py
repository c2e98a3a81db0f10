"""Train only part of a model: everything else keeps its weights *and* its normalisation
statistics (used by the LVIS stage-2 recipes: "classifier only" vs "all non-trunk
parameters")."""

import fnmatch
from typing import Sequence

from torch import nn

from detectron2.layers import FrozenBatchNorm2d

__all__ = ["train_only", "CLASSIFIER_PATTERNS"]

# the box predictors' classification layers, of a StandardROIHeads or of every Cascade stage
CLASSIFIER_PATTERNS = (
    "roi_heads.box_predictor.cls_score.*",
    "roi_heads.box_predictor.*.cls_score.*",
)


def train_only(*, model: nn.Module, patterns: Sequence[str]) -> nn.Module:
    """Keep ``requires_grad`` only on parameters whose name matches one of ``patterns``
    (``fnmatch``; ``"*"`` keeps every parameter that trained already); returns ``model``.

    Parameters that were frozen stay frozen (a frozen trunk stays frozen under ``"*"``).
    BatchNorm layers none of whose parameters train become ``FrozenBatchNorm2d`` (their running
    statistics are kept, so ``model.train()`` no longer moves them). Recipes set
    ``train.trainable`` (patterns); ``freezedet.engine`` applies it right after building the
    model, before the optimizer.

    Args:
        model (nn.Module): the model.
        patterns (Sequence[str]): parameter-name patterns that keep training.
    """
    patterns = list(patterns)
    assert patterns, "train_only needs at least one pattern"
    kept = 0
    for name, p in model.named_parameters():
        keep = p.requires_grad and any(fnmatch.fnmatchcase(name, pat) for pat in patterns)
        p.requires_grad_(keep)
        kept += keep
    assert kept, f"no trainable parameter matches {patterns}"
    _freeze_idle_norms(model)
    return model


def _freeze_idle_norms(module: nn.Module) -> nn.Module:
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not any(
            p.requires_grad for p in child.parameters()
        ):
            setattr(module, name, FrozenBatchNorm2d.convert_frozen_batchnorm(child))
        else:
            _freeze_idle_norms(child)
    return module
