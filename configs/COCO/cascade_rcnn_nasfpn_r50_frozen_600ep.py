# The paper's long schedule: 600 COCO epochs.
from ..common.coco_recipe import coco_recipe
from .cascade_rcnn_nasfpn_r50_frozen_72ep import dataloader, model, optimizer, train

lr_multiplier = coco_recipe(model, train, optimizer, epochs=600)
