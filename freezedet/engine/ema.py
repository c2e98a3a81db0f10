"""Momentum (EMA) teacher updates for BYOL / AlignDet-style pre-training.

:class:`MomentumUpdateHook` updates ``model.momentum`` from the online modules named by
``model.momentum_pairs_online()`` after every step, with the momentum coefficient following
BYOL's cosine schedule from ``base_momentum`` (AlignDet: 0.996) to 1 over training. The momentum
copy is a submodule, so the checkpointer saves it and ``--resume`` restores it; the coefficient
is a function of the iteration, which resume also restores.
"""

import math

import torch
from torch import nn

from detectron2.engine import HookBase

__all__ = ["cosine_momentum", "ema_update_", "MomentumUpdateHook"]


def cosine_momentum(base: float, it: int, max_iter: int) -> float:
    """BYOL's schedule: ``1 - (1 - base) * (cos(pi * it / max_iter) + 1) / 2``; ``base`` at
    ``it = 0``, 1 at ``it = max_iter``."""
    assert 0 <= base <= 1, f"base momentum must be in [0, 1], got {base}"
    assert max_iter > 0, f"max_iter must be positive, got {max_iter}"
    t = min(max(it / max_iter, 0.0), 1.0)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * t) + 1.0) / 2.0


@torch.no_grad()
def ema_update_(target: nn.Module, source: nn.Module, momentum: float):
    """``target = momentum * target + (1 - momentum) * source`` for the parameters ``source``
    trains; parameters it does not train (a frozen trunk) and all buffers are copied, so they
    stay bit-identical instead of drifting by rounding."""
    t_params, s_params = dict(target.named_parameters()), dict(source.named_parameters())
    assert (
        t_params.keys() == s_params.keys()
    ), f"momentum and online modules differ: {sorted(t_params.keys() ^ s_params.keys())[:5]}"
    for name, s in s_params.items():
        if s.requires_grad:
            t_params[name].mul_(momentum).add_(s.detach(), alpha=1.0 - momentum)
        else:
            t_params[name].copy_(s)
    t_bufs = dict(target.named_buffers())
    for name, s in source.named_buffers():
        t_bufs[name].copy_(s)


class MomentumUpdateHook(HookBase):
    """After every step, EMA-update ``model.momentum`` from the online modules (cosine schedule
    ``base_momentum`` -> 1 over ``trainer.max_iter``). Register it before the checkpointer, so
    a checkpoint taken after step k holds the momentum weights after update k."""

    def __init__(self, *, base_momentum: float = 0.996):
        """
        Args:
            base_momentum (float): momentum coefficient at the first iteration.
        """
        assert 0 <= base_momentum <= 1, f"base_momentum must be in [0, 1], got {base_momentum}"
        self.base_momentum = base_momentum

    def _model(self):
        model = self.trainer.model
        model = getattr(model, "module", model)  # DistributedDataParallel
        assert hasattr(model, "momentum") and hasattr(model, "momentum_pairs_online"), (
            f"{type(model).__name__} has no momentum copy: MomentumUpdateHook (train.extra_hooks) "
            "is for freezedet.modeling.meta_arch.AlignDetPretrainer"
        )
        return model

    def _update(self, m: float):
        model = self._model()
        for name, online in model.momentum_pairs_online().items():
            ema_update_(model.momentum[name], online, m)

    def before_train(self):
        # a fresh run starts the momentum copy from the online weights as loaded from
        # train.init_checkpoint (an ImageNet checkpoint has no momentum.* keys); a resumed run
        # keeps the momentum weights restored from its checkpoint
        if self.trainer.start_iter == 0:
            self._update(0.0)

    def after_step(self):
        m = cosine_momentum(self.base_momentum, self.trainer.iter + 1, self.trainer.max_iter)
        self._update(m)
        self.trainer.storage.put_scalar("momentum", m, smoothing_hint=False)
