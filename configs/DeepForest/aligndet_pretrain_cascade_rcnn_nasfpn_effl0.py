# AlignDet pre-training of Cascade R-CNN + NAS-FPN on the frozen EfficientNet-Lite0, DeepForest
# tiles without labels (proposal cache: see aligndet_pretrain_faster_rcnn_fpn_effl0.py).
from ..common.aligndet import LR_PER_IMAGE, aligndet_pretraining
from ..common.data.deepforest_aligndet import dataloader
from .cascade_rcnn_nasfpn import lr_multiplier, model as detector, optimizer, train

model = aligndet_pretraining(detector, train)
optimizer.lr = LR_PER_IMAGE * dataloader.train.total_batch_size
