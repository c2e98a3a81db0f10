from .aligndet import (  # noqa: F401
    AlignDetPretrainer,
    BoxProjector,
    box_contrast,
    box_contrast_chance,
    match_rois_to_proposals,
)
from .shared_trunk import ALL_HEADS, SharedTrunkDetectors  # noqa: F401
