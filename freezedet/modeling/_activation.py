"""Activation functions by name, shared by freezedet's heads and necks."""

from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["ACTIVATIONS", "get_activation"]

ACTIVATIONS = {"relu": F.relu, "swish": F.silu, "silu": F.silu}


def get_activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """``"relu"`` or ``"swish"`` (= ``"silu"``) as a function."""
    assert name in ACTIVATIONS, f"activation={name!r}: one of {list(ACTIVATIONS)}"
    return ACTIVATIONS[name]
