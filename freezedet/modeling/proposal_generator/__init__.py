from .norm_rpn_head import NormRPNHead

__all__ = ["NormRPNHead"]
