from .nasfpn import (
    NASFPN,
    NASFPN_CELLS,
    BottleneckBlock,
    MergeCell,
    add_nasfpn_config,
    build_nasfpn_backbone,
)
from .plain import PlainNeck, add_plain_neck_config, build_plain_neck_backbone
from .top_blocks import LastLevelP6Conv

__all__ = ["NASFPN", "NASFPN_CELLS", "BottleneckBlock", "MergeCell"]
__all__ += ["add_nasfpn_config", "build_nasfpn_backbone"]
__all__ += ["PlainNeck", "add_plain_neck_config", "build_plain_neck_backbone", "LastLevelP6Conv"]
