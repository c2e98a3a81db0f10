# Cascade Mask R-CNN on the frozen OpenAI CLIP ViT-B/16, ViTDet-style (Li et al., ECCV 2022:
# projects/ViTDet/configs/COCO/cascade_mask_rcnn_vitdet_b_100ep.py): simple pyramid + FPN P2-P6,
# LSJ 1024, batch 64, AdamW lr 1e-4 (weight decay 0.1), 100 epochs, x0.1 at 88.9 % and 96.3 %,
# 250 warmup iterations. Only the pyramid, neck and heads train. Set the trunk's weights:
#     model.backbone.bottom_up.weights=/path/to/vit_base_patch16_clip_224.openai.safetensors
import torch

from detectron2.config import LazyCall as L
from detectron2.solver.build import get_default_optimizer_params
from freezedet.config import use_trunk

from ..common.coco_recipe import coco_recipe
from ..common.data.coco_lsj import dataloader
from ..common.models.cascade_mask_rcnn_simplefpn import model
from ..common.schedule import step_schedule
from ..common.train import train

optimizer = L(torch.optim.AdamW)(
    params=L(get_default_optimizer_params)(weight_decay_norm=0.0),
    lr=1e-4,
    betas=(0.9, 0.999),
    weight_decay=0.1,
)
use_trunk(model, dataloader, train, "vitb16clip", "frozen")
model.backbone.bottom_up.out_features = ["c2", "c3", "c4", "c5"]
dataloader.train.mapper.use_instance_mask = True
# ViTDet's 100-epoch milestones: 163889 and 177546 of 184375 iterations
_MILESTONES = (163889 / 184375, 177546 / 184375)
coco_recipe(model, train, optimizer, epochs=100, lr=1e-4, milestones=_MILESTONES)
optimizer.weight_decay = 0.1  # coco_recipe sets the SGD recipes' 4e-5
lr_multiplier = step_schedule(
    train.max_iter, warmup_iters=250, milestones=_MILESTONES, warmup_factor=0.001
)
