# AlignDet pre-training of Faster R-CNN + FPN neck and heads on the frozen ImageNet
# EfficientNet-Lite0, all DeepForest tiles without labels. Needs the proposal cache:
#   python tools/selective_search.py --config-file configs/DeepForest/aligndet_pretrain_faster_rcnn_fpn_effl0.py
# Fine-tune from it: DeepForest/faster_rcnn_fpn_effl0_frozen_aligndet.py
from ..common.aligndet import LR_PER_IMAGE, aligndet_pretraining
from ..common.data.deepforest_aligndet import dataloader
from .faster_rcnn_fpn import lr_multiplier, model as detector, optimizer, train

model = aligndet_pretraining(detector, train)
optimizer.lr = LR_PER_IMAGE * dataloader.train.total_batch_size
