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
    convert_norm,
    replace_batchnorm,
)
from .vit import ViTBackbone

__all__ = [
    "ViTBackbone",
    "WeightsReport",
    "load_timm_weights",
    "MLPAdapter",
    "ResidualAdapter",
    "add_residual_adapters",
    "with_residual_adapters",
    "MODES",
    "FreezableResNet",
    "TimmBackbone",
    "convert_norm",
    "replace_batchnorm",
    "FeatureCache",
    "FrozenTrunkRuntime",
    "fold_frozen_batchnorm",
]
