# faster_rcnn_fpn.py (frozen EfficientNet-Lite0) with a feature cache: the frozen trunk runs once
# per (tile, flip), later epochs reuse its features (inputs are flips of fixed-size tiles: a finite
# set).
from detectron2.config import LazyCall as L

from freezedet.modeling.backbone import FeatureCache

from .faster_rcnn_fpn import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.feature_cache = L(FeatureCache)(budget_mb=1024)
