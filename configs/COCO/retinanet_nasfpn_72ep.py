# RetinaNet + NAS-FPN on an ImageNet ResNet-50 (frozen by default), COCO, LSJ 1024, batch 64, 72
# epochs. "Proper Reuse" TF config: official/projects/backbone_reuse/configs/experiments/retinanet/
# retinanet_resnet101_nasfpn_72epochs.yaml (batch 256, LR 0.32 -> 0.08 at batch 64, x0.1 at 2/3 and
# 17/18); NAS-FPN with TF Vision's defaults (5 repeats, sync BN, ReLU: the RetinaNet yamls set no
# activation). Anchors (4 strides, 3 scales, P3-P7) are already TF RetinaNet's defaults. The head
# keeps detectron2's RetinaNetHead with per-level BN (TF: per-level sync BN).
from freezedet.config import use_trunk

from ..common.coco_recipe import coco_recipe
from ..common.data.coco_lsj import dataloader
from ..common.models.reference_heads import REFERENCE_NORM
from ..common.models.retinanet_nasfpn import model
from ..common.optim import SGD as optimizer
from ..common.train import train

# Trunk and mode are overrides, e.g. `trunk.mode=finetune`: a trained trunk (fine-tuned or from
# scratch) trains its BN statistics too, synchronised across GPUs (the reference with
# freeze_backbone false: norm_activation.use_sync_bn; detectron2's NaiveSyncBatchNorm on CPU).
trunk = dict(name="r50", mode="frozen", trained_norm="SyncBN")
use_trunk(model, dataloader, train, **trunk)
model.backbone.update(num_repeats=5, norm=REFERENCE_NORM, activation="relu")
model.head.norm = REFERENCE_NORM
lr_multiplier = coco_recipe(model, train, optimizer, epochs=72, lr=0.08)
dataloader.train.mapper.use_instance_mask = False
