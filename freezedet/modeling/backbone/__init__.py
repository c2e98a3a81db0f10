from .adapters import (
    MLPAdapter,
    ResidualAdapter,
    add_residual_adapters,
    with_residual_adapters,
)
from .feature_cache import FeatureCache
from .frozen_runtime import FrozenTrunkRuntime, fold_frozen_batchnorm
from .weights import WeightsReport, load_timm_weights
from .classifier import (
    MODES,
    FreezableResNet,
    TimmBackbone,
    build_timm_backbone,
    convert_norm,
    replace_batchnorm,
)
from .vit import ViTBackbone, build_vit_backbone

__all__ = [
    "ViTBackbone",
    "build_vit_backbone",
    "WeightsReport",
    "load_timm_weights",
    "MLPAdapter",
    "ResidualAdapter",
    "add_residual_adapters",
    "with_residual_adapters",
    "MODES",
    "FreezableResNet",
    "TimmBackbone",
    "build_timm_backbone",
    "convert_norm",
    "replace_batchnorm",
    "FeatureCache",
    "FrozenTrunkRuntime",
    "fold_frozen_batchnorm",
]
