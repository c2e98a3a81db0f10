from .class_balanced import (
    ClassBalancedFastRCNNOutputLayers,
    effective_number_weights,
    federated_classes,
)

__all__ = ["ClassBalancedFastRCNNOutputLayers", "effective_number_weights", "federated_classes"]
