# Faster R-CNN + FPN on an ImageNet ResNet-50 (frozen by default), COCO, LSJ 1024, batch 64, 72
# epochs, as the "Proper Reuse" TF config builds it
# (official/projects/backbone_reuse/configs/experiments/
# faster_rcnn/fastrcnn_resnet101_fpn_72epochs.yaml, with ResNet-50): FPN on C2-C5 -> P2-P6, SyncBN,
# anchors 32-512 px, the reference heads (RPN conv + norm, 4 conv + 2 fc box head with norm, swish),
# SGD 0.16, x0.1 at 2/3 and 17/18 (configs/common/{reference,coco_recipe}.py).
from freezedet.config import use_trunk

from ..common.coco_recipe import coco_recipe
from ..common.data.coco_lsj import dataloader
from ..common.models.faster_rcnn_fpn import model
from ..common.models.reference_heads import use_reference_heads
from ..common.optim import SGD as optimizer
from ..common.reference import reference_fpn
from ..common.train import train

# Trunk and mode are overrides, e.g. `trunk.mode=finetune`: a trained trunk (fine-tuned or from
# scratch) trains its BN statistics too, synchronised across GPUs (the reference with
# freeze_backbone false: norm_activation.use_sync_bn; detectron2's NaiveSyncBatchNorm on CPU).
trunk = dict(name="r50", mode="frozen", trained_norm="SyncBN")
use_trunk(model, dataloader, train, **trunk)
model.backbone.bottom_up.out_features = ["res2", "res3", "res4", "res5"]
reference_fpn(model)
use_reference_heads(model)
lr_multiplier = coco_recipe(model, train, optimizer, epochs=72)
dataloader.train.mapper.use_instance_mask = False
