from .nasfpn import (
    NASFPN,
    NASFPN_CELLS,
    BottleneckBlock,
    MergeCell,
    build_freezedet_nasfpn_backbone,
)
from .fpn import build_freezedet_fpn_backbone, build_freezedet_simplefpn_backbone
from .plain import PlainNeck, build_freezedet_plainneck_backbone
from .top_blocks import LastLevelP6Conv

__all__ = ["NASFPN", "NASFPN_CELLS", "BottleneckBlock", "MergeCell"]
__all__ += ["PlainNeck", "LastLevelP6Conv"]
__all__ += ["build_freezedet_fpn_backbone", "build_freezedet_simplefpn_backbone"]
__all__ += ["build_freezedet_nasfpn_backbone", "build_freezedet_plainneck_backbone"]
