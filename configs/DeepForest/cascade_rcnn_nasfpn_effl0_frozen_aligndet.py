# Cascade R-CNN + NAS-FPN, frozen EfficientNet-Lite0, initialised by AlignDet pre-training
# (run DeepForest/aligndet_pretrain_cascade_rcnn_nasfpn_effl0.py first).
from .cascade_rcnn_nasfpn import dataloader, lr_multiplier, model, optimizer, train

train.init_checkpoint = (
    "output/DeepForest/aligndet_pretrain_cascade_rcnn_nasfpn_effl0/model_final.pth"
)
