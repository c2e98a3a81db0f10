"""How a frozen trunk is executed: a folded, optionally compiled runtime copy.

A frozen trunk ("Proper Reuse of Image Classification Features Improves Object Detection",
Vasconcelos et al., CVPR 2022) never changes, so it can run as a *different program* from the
module that holds its weights:

- frozen BatchNorm folded into the preceding convolution (one conv instead of conv + affine);
- ``channels_last`` memory format;
- ``torch.compile`` (CPU and CUDA);
- bf16 / fp16 autocast on CUDA;
- ``torch.inference_mode`` instead of ``torch.no_grad`` (outputs cloned at the boundary: the neck
  saves them for its backward, which inference tensors forbid).

The runtime copy lives outside the module tree (not a submodule, not in ``state_dict``), so
checkpoints keep the ordinary unfolded layout and load into any model. The copy is rebuilt when
the trunk's tensors change (checkpoint loading, ``.to(device)``, ``freeze()``): every parameter
and buffer contributes its storage address and autograd version counter (bumped by every in-place
write, e.g. ``load_state_dict``) to a key that is checked on each call.
"""

import copy
import logging
from typing import Callable, List, Optional

import torch
from torch import nn

__all__ = ["FrozenTrunkRuntime", "fold_frozen_batchnorm"]

logger = logging.getLogger(__name__)

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _frozen_bn_types():
    from detectron2.layers import FrozenBatchNorm2d
    from timm.layers import FrozenBatchNormAct2d

    return FrozenBatchNorm2d, FrozenBatchNormAct2d


def _fold_into(conv: nn.Conv2d, bn: nn.Module):
    scale = bn.weight * (bn.running_var + bn.eps).rsqrt()
    shift = bn.bias - bn.running_mean * scale
    bias = shift if conv.bias is None else conv.bias * scale + shift
    conv.weight = nn.Parameter(conv.weight * scale.reshape(-1, 1, 1, 1), requires_grad=False)
    conv.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)


def _tail(bn: nn.Module) -> nn.Module:
    """What remains of a frozen norm once its affine part is folded away."""
    frozen_bn, frozen_bn_act = _frozen_bn_types()
    if isinstance(bn, frozen_bn_act):
        return nn.Sequential(bn.drop, bn.act)
    return nn.Identity()


def fold_frozen_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every frozen BatchNorm that directly follows a ``Conv2d`` into it (in place).

    Handles detectron2's ``Conv2d(norm=FrozenBatchNorm2d)`` and a conv followed by a frozen norm
    among a module's children (timm's ``conv → FrozenBatchNormAct2d``, whose activation is kept).
    Children order is taken as execution order; :class:`FrozenTrunkRuntime` checks the folded copy
    numerically against the original and falls back to the unfolded copy if that assumption fails.
    Returns ``module``; ``module._folded_norms`` counts the folded norms.
    """
    frozen = _frozen_bn_types()
    n = 0
    for child in module.children():
        fold_frozen_batchnorm(child)
        n += getattr(child, "_folded_norms", 0)
    if isinstance(module, nn.Conv2d) and isinstance(getattr(module, "norm", None), frozen):
        _fold_into(module, module.norm)
        module.norm = None
        n += 1
    prev = None
    for name, child in list(module.named_children()):
        if (
            isinstance(child, frozen)
            and isinstance(prev, nn.Conv2d)
            and getattr(prev, "norm", None) is None
            and prev.out_channels == child.weight.numel()
        ):
            _fold_into(prev, child)
            setattr(module, name, _tail(child))
            n += 1
        prev = child
    module._folded_norms = n
    return module


def _state_key(module: nn.Module):
    tensors = list(module.parameters()) + list(module.buffers())
    return tuple((t.data_ptr(), t._version, t.dtype) for t in tensors)


class FrozenTrunkRuntime:
    """The execution copy of a frozen trunk, built lazily and rebuilt when the trunk changes.

    Not an ``nn.Module``: it must not appear in the owner's parameters or ``state_dict``.
    """

    def __init__(
        self,
        *,
        fold_bn: bool = True,
        channels_last: bool = False,
        compile: bool = False,
        autocast: Optional[str] = None,
        inference_mode: bool = False,
    ):
        """
        Args:
            fold_bn (bool): fold frozen BatchNorm into the preceding conv.
            channels_last (bool): run the trunk in ``torch.channels_last`` memory format.
            compile (bool): ``torch.compile`` the trunk (first call compiles: slow once).
            autocast (str or None): "bf16" or "fp16" autocast of the trunk, CUDA only (ignored
                with a warning on CPU); outputs are cast back to float32.
            inference_mode (bool): run under ``torch.inference_mode`` and clone the outputs.
        """
        if autocast is not None and autocast not in _AUTOCAST_DTYPES:
            raise ValueError(
                f"trunk autocast={autocast!r} is not one of {sorted(_AUTOCAST_DTYPES)} or None"
            )
        self.fold_bn = fold_bn
        self.channels_last = channels_last
        self.compile = compile
        self.autocast = autocast
        self.inference_mode = inference_mode
        self._key = None
        self._fn = None
        self._warned_cpu_autocast = False
        self.builds = 0  # how often the copy was (re)built: inspectable in tests

    def settings(self) -> dict:
        return dict(
            fold_bn=self.fold_bn,
            channels_last=self.channels_last,
            compile=self.compile,
            autocast=self.autocast,
            inference_mode=self.inference_mode,
        )

    def __deepcopy__(self, memo):
        # a copied model gets its own runtime, built from its own weights
        return FrozenTrunkRuntime(**self.settings())

    def __getstate__(self):
        return self.settings()

    def __setstate__(self, state):
        self.__init__(**state)

    def _build(self, trunk: nn.Module, forward: Callable):
        runtime = copy.deepcopy(trunk).eval().requires_grad_(False)
        # LayerNorm trunks (ViT, ConvNeXt) have nothing to fold: skip the copy and the check
        if self.fold_bn and any(isinstance(m, _frozen_bn_types()) for m in runtime.modules()):
            folded = fold_frozen_batchnorm(copy.deepcopy(runtime))
            if self._same_outputs(runtime, folded, forward):
                runtime = folded
            else:
                logger.warning(
                    "Folding frozen BatchNorm changed the trunk's outputs (norms not directly "
                    "after their conv?); running the unfolded trunk."
                )
        if self.channels_last:
            runtime = runtime.to(memory_format=torch.channels_last)
        self._module = runtime  # keeps the copy alive for the closure below

        def run(x):
            return forward(runtime, x)

        self._fn = torch.compile(run) if self.compile else run
        self.builds += 1

    @staticmethod
    def _same_outputs(a, b, forward) -> bool:
        device = next(iter(a.parameters())).device
        x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)).to(device)
        with torch.no_grad():
            ya, yb = forward(a, x), forward(b, x)
        return all(torch.allclose(p, q, rtol=1e-3, atol=1e-4) for p, q in zip(ya, yb))

    def __call__(self, trunk: nn.Module, forward: Callable, x: torch.Tensor) -> List[torch.Tensor]:
        """``forward(trunk, x)`` (a list of feature maps), run on the runtime copy."""
        key = _state_key(trunk)
        if key != self._key:
            self._build(trunk, forward)
            self._key = key
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        grad_mode = torch.inference_mode() if self.inference_mode else torch.no_grad()
        with grad_mode, self._autocast(x):
            feats = self._fn(x)
        if self.autocast is not None and x.is_cuda:
            feats = [f.float() for f in feats]
        if self.channels_last:
            feats = [f.contiguous() for f in feats]
        if self.inference_mode:
            feats = [f.clone() for f in feats]
        return feats

    def _autocast(self, x):
        if self.autocast is None:
            return torch.autocast("cpu", enabled=False)
        if not x.is_cuda:
            if not self._warned_cpu_autocast:
                logger.warning(f"trunk autocast={self.autocast!r} ignored: CUDA only.")
                self._warned_cpu_autocast = True
            return torch.autocast("cpu", enabled=False)
        return torch.autocast("cuda", dtype=_AUTOCAST_DTYPES[self.autocast])
