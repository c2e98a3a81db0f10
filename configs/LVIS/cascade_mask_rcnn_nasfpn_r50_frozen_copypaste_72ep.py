# Long-tail stage 1: Cascade Mask R-CNN + NAS-FPN on a frozen ImageNet ResNet-50, LVIS v1,
# LSJ 1024 + Copy-Paste, repeat-factor sampling, softmax CE, batch 64, 72 epochs. The model is
# the COCO reference one (NAS-FPN 5@256 SyncBN swish on P3-P7, anchors 64-1024, reference heads,
# cascade IoU 0.5 / 0.7 / 0.8; configs/COCO/cascade_mask_rcnn_nasfpn_72ep.py); the
# backbone_reuse project ships no LVIS config, so LR and schedule are COCO's (unverified).
from freezedet.config import use_trunk

from ..common.data.lvis_lsj import dataloader
from ..common.lvis_recipe import lvis_recipe
from ..common.models.cascade_heads import REFERENCE_CASCADE_STAGES, use_cascade_stages
from ..common.models.cascade_mask_rcnn_nasfpn import model
from ..common.models.reference_heads import use_reference_heads
from ..common.optim import SGD as optimizer
from ..common.reference import reference_nasfpn
from ..common.train import train

use_trunk(model, dataloader, train, "r50", "frozen")
reference_nasfpn(model)
use_cascade_stages(model.roi_heads, REFERENCE_CASCADE_STAGES)
use_reference_heads(model)
lr_multiplier = lvis_recipe(model, train, optimizer, epochs=72)
