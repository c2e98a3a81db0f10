from .classifier import MODES, FreezableResNet, TimmBackbone, build_timm_backbone, convert_norm

__all__ = ["MODES", "FreezableResNet", "TimmBackbone", "build_timm_backbone", "convert_norm"]
