# One frozen trunk, three detectors trained on it in the same step: Faster R-CNN + FPN,
# Faster R-CNN + NAS-FPN and Cascade R-CNN + NAS-FPN ("Proper Reuse"'s neck/head comparison for
# the price of one trunk pass). The trunk is detector 0's; recipes set every detector's trunk.
import copy

from detectron2.config import LazyCall as L

from freezedet.modeling.meta_arch import SharedTrunkDetectors

from .cascade_rcnn_nasfpn import model as cascade_nasfpn
from .faster_rcnn_fpn import model as fpn
from .faster_rcnn_nasfpn import model as nasfpn

model = L(SharedTrunkDetectors)(
    trunk=copy.deepcopy(fpn.backbone.bottom_up),
    detectors=[fpn, nasfpn, cascade_nasfpn],
    names=["fpn", "nasfpn", "cascade_nasfpn"],
)
