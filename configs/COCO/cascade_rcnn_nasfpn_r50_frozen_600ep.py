# The paper's long schedule: 600 COCO epochs, x0.1 at 23/24 and 59/60 (official/projects/
# backbone_reuse/configs/experiments/faster_rcnn/fastrcnn_resnet101_nasfpn_cascade_600epochs.yaml
# boundaries [1062734, 1090458] of 1108940 steps), 1024 px.
from ..common.coco_recipe import coco_recipe
from .cascade_rcnn_nasfpn_72ep import dataloader, model, optimizer, train

lr_multiplier = coco_recipe(model, train, optimizer, epochs=600)
