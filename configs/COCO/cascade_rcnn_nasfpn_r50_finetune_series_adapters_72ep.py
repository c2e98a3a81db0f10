# The paper's best configuration (Sec. 5; the write-up: fine-tuning + residual adapters +
# NAS-FPN + Cascade): the ResNet-50 trunk fine-tuned with synchronised BN *and* series residual
# adapters after every bottleneck's 3x3 conv + norm; trunk and adapters train together. Series,
# because a parallel adapter beside a detectron2 conv must be added before that conv's norm,
# which has no closed form when the norm trains (freezedet raises for it). Which adapter kind
# the paper used for this row is not stated in the material available here (unverified).
from freezedet.config import use_trunk

from ..common.adapters import use_adapters
from .cascade_rcnn_nasfpn_72ep import dataloader, lr_multiplier, model, optimizer, train

use_trunk(model, dataloader, train, name="r50", mode="finetune", trained_norm="SyncBN")
use_adapters(model, kind="series")
