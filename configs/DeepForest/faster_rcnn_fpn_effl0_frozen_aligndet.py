# Faster R-CNN + FPN, frozen EfficientNet-Lite0, neck and heads initialised by AlignDet
# pre-training (run DeepForest/aligndet_pretrain_faster_rcnn_fpn_effl0.py first). The loading
# log lists the transferred keys; the classifier starts fresh.
from .faster_rcnn_fpn import dataloader, lr_multiplier, model, optimizer, train

train.init_checkpoint = "output/DeepForest/aligndet_pretrain_faster_rcnn_fpn_effl0/model_final.pth"
# what transfers besides the trunk (the class-specific classifier always starts fresh)
train.aligndet_transfer = ["neck", "rpn", "roi_heads"]
