# The fine-tuned counterpart: the ImageNet trunk trains (BN statistics kept, batch is tiny).
from .faster_rcnn_fpn_effl0_frozen import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.mode = "finetune"
