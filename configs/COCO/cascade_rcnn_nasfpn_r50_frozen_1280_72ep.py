# The input size of the TF Cascade NAS-FPN configs: official/projects/backbone_reuse/configs/
# experiments/faster_rcnn/fastrcnn_resnet101_nasfpn_cascade_{72,600}epochs.yaml set
# input_size [1280, 1280, 3]: LSJ with a 1280 px crop, tested at 1280. Anchors stay 8 strides.
from .cascade_rcnn_nasfpn_72ep import dataloader, lr_multiplier, model, optimizer, train

dataloader.train.mapper.augmentations[0].target_height = 1280
dataloader.train.mapper.augmentations[0].target_width = 1280
dataloader.train.mapper.augmentations[1].crop_size = (1280, 1280)
dataloader.test.mapper.augmentations[0].short_edge_length = 1280
dataloader.test.mapper.augmentations[0].max_size = 1280
