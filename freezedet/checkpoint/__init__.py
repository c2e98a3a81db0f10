from .convert import (
    EFFICIENTNET_LITE,
    backbone_checkpoint,
    convert_efficientnet_lite,
    default_weights_path,
    efficientnet_lite_classifier,
    load_efficientnet_lite_package,
    map_state_dict_by_order,
)

__all__ = [k for k in globals() if not k.startswith("_")]
