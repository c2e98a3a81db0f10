# Mask R-CNN + NAS-FPN on an ImageNet ResNet-50 (frozen by default), COCO, LSJ 1024, batch 64, 72
# epochs, as the "Proper Reuse" TF config builds it
# (official/projects/backbone_reuse/configs/experiments/
# faster_rcnn/fastrcnn_resnet101_nasfpn_72epochs.yaml, with ResNet-50): NAS-FPN 5@256 on P3-P7,
# SyncBN, swish, anchors 64-1024 px, RoI pooling from P3-P7, the reference heads (RPN conv + norm, 4
# conv + 2 fc box head with norm), SGD 0.16, x0.1 at 2/3 and 17/18
# (configs/common/{reference,coco_recipe}.py). The backbone_reuse project ships box-only configs;
# the mask branch (4 convs + BN, TF MaskHead) follows official/vision/configs/maskrcnn.py
# (unverified for the paper's masks).
from freezedet.config import use_trunk

from ..common.coco_recipe import coco_recipe
from ..common.data.coco_lsj import dataloader
from ..common.models.mask_rcnn_nasfpn import model
from ..common.models.reference_heads import use_reference_heads
from ..common.optim import SGD as optimizer
from ..common.reference import reference_nasfpn
from ..common.train import train

# Trunk and mode are overrides, e.g. `trunk.mode=finetune`: a trained trunk (fine-tuned or from
# scratch) trains its BN statistics too, synchronised across GPUs (the reference with
# freeze_backbone false: norm_activation.use_sync_bn; detectron2's NaiveSyncBatchNorm on CPU).
trunk = dict(name="r50", mode="frozen", trained_norm="SyncBN")
use_trunk(model, dataloader, train, **trunk)
reference_nasfpn(model)
use_reference_heads(model)
lr_multiplier = coco_recipe(model, train, optimizer, epochs=72)
dataloader.train.mapper.use_instance_mask = True
