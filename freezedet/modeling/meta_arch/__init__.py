from .aligndet import AlignDetPretrainer, BoxProjector, box_infonce  # noqa: F401
from .shared_trunk import ALL_HEADS, SharedTrunkDetectors  # noqa: F401
