from .classifier import (
    MODES,
    FreezableResNet,
    TimmBackbone,
    build_timm_backbone,
    convert_norm,
    replace_batchnorm,
)

__all__ = [
    "MODES",
    "FreezableResNet",
    "TimmBackbone",
    "build_timm_backbone",
    "convert_norm",
    "replace_batchnorm",
]
