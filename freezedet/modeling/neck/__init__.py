from .nasfpn import (
    NASFPN,
    NASFPN_CELLS,
    BottleneckBlock,
    MergeCell,
)
from .plain import PlainNeck
from .top_blocks import LastLevelP6Conv

__all__ = ["NASFPN", "NASFPN_CELLS", "BottleneckBlock", "MergeCell"]
__all__ += ["PlainNeck", "LastLevelP6Conv"]
