# The paper's long schedule at the TF Cascade config's input size: 600 COCO epochs (x0.1 at
# 23/24 and 59/60, fastrcnn_resnet101_nasfpn_cascade_600epochs.yaml), 1280 px.
from ..common.coco_recipe import coco_recipe
from .cascade_rcnn_nasfpn_r50_frozen_1280_72ep import dataloader, model, optimizer, train

lr_multiplier = coco_recipe(model, train, optimizer, epochs=600)
