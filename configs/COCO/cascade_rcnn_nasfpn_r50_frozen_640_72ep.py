# Small-input variant: LSJ with a 640 px crop.
from .cascade_rcnn_nasfpn_72ep import dataloader, lr_multiplier, model, optimizer, train

dataloader.train.mapper.augmentations[0].target_height = 640
dataloader.train.mapper.augmentations[0].target_width = 640
dataloader.train.mapper.augmentations[1].crop_size = (640, 640)
dataloader.test.mapper.augmentations[0].short_edge_length = 640
dataloader.test.mapper.augmentations[0].max_size = 640
