"""Gradient clipping (``train.clip_grad``) as a step pre-hook of the optimizer.

detectron2's ``maybe_add_gradient_clipping`` takes a yacs config and clips each parameter's
gradient by its own norm (``per_param_clipper``); ``train.clip_grad`` clips by the norm of all
gradients together (``torch.nn.utils.clip_grad_norm_``), as most recipes (and the papers'
TF/JAX code) mean by gradient clipping. :class:`GradientClipper` is registered with torch's
public ``Optimizer.register_step_pre_hook``, so the optimizer keeps its class and its ``step``:
no subclass is generated and nothing is patched. Under AMP, ``GradScaler.step`` unscales the
gradients before it calls ``optimizer.step``, so they are clipped at their true scale.
"""

from typing import Mapping

import torch

__all__ = ["GradientClipper", "add_gradient_clipping"]


class GradientClipper:
    """Clips the gradients of all parameters of an optimizer before its step."""

    def __init__(self, *, clip_type: str = "norm", clip_value: float = 1.0, norm_type=2.0):
        """
        Args:
            clip_type (str): "norm" (the norm of all gradients together is at most
                ``clip_value``) or "value" (every gradient element in ``[-clip_value,
                clip_value]``).
            clip_value (float): the largest norm or absolute value.
            norm_type (float): the p of the p-norm for "norm" (``inf`` for the max norm).
        """
        assert clip_type in ("norm", "value"), f"clip_type={clip_type!r}: 'norm' or 'value'"
        self.clip_type = clip_type
        self.clip_value = clip_value
        self.norm_type = norm_type

    def __call__(self, optimizer, args, kwargs):
        grads = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if self.clip_type == "norm":
            torch.nn.utils.clip_grad_norm_(grads, self.clip_value, self.norm_type)
        else:
            torch.nn.utils.clip_grad_value_(grads, self.clip_value)


def add_gradient_clipping(optimizer: torch.optim.Optimizer, clip_cfg: Mapping):
    """Register a :class:`GradientClipper` built from ``train.clip_grad`` (keys ``clip_type``,
    ``clip_value``, ``norm_type``; ``enabled`` is the caller's business) on ``optimizer``."""
    optimizer.register_step_pre_hook(
        GradientClipper(
            clip_type=clip_cfg.get("clip_type", "norm"),
            clip_value=clip_cfg.get("clip_value", 1.0),
            norm_type=clip_cfg.get("norm_type", 2.0),
        )
    )
    return optimizer
