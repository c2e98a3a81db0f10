from .adapters import ResidualAdapter, add_residual_adapters, with_residual_adapters
from .classifier import (
    MODES,
    FreezableResNet,
    TimmBackbone,
    build_timm_backbone,
    convert_norm,
    replace_batchnorm,
)

__all__ = [
    "ResidualAdapter",
    "add_residual_adapters",
    "with_residual_adapters",
    "MODES",
    "FreezableResNet",
    "TimmBackbone",
    "build_timm_backbone",
    "convert_norm",
    "replace_batchnorm",
]
