from .box_head import ConvFCNormHead
from .class_balanced import (
    ClassBalancedFastRCNNOutputLayers,
    effective_number_weights,
    federated_classes,
)

__all__ = [
    "ConvFCNormHead",
    "ClassBalancedFastRCNNOutputLayers",
    "effective_number_weights",
    "federated_classes",
]
