# Faster R-CNN + a plain neck of 4 stacked conv layers per level on DeepForest tiles, CPU-sized:
# faster_rcnn_plainneck1.py with a deeper neck (the detector-capacity ablation of "Proper Reuse").
from .faster_rcnn_plainneck1 import dataloader, lr_multiplier, model, optimizer, train, trunk

model.backbone.num_layers = 4
