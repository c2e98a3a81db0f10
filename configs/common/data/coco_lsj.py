# COCO 2017 with Large Scale Jittering (scale 0.1-2.0, fixed square crop), as "Proper Reuse"
# trains: the image size is one value, so the 640 px small-model variant is one override.
from omegaconf import OmegaConf

import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from detectron2.data import (
    DatasetMapper,
    build_detection_test_loader,
    build_detection_train_loader,
)

from freezedet.data.validate import checked_dataset_dicts
from freezedet.evaluation import COCOEvaluator

image_size = 1024

dataloader = OmegaConf.create()
dataloader.train = L(build_detection_train_loader)(
    dataset=L(checked_dataset_dicts)(names="coco_2017_train", verify_images=False),
    mapper=L(DatasetMapper)(
        is_train=True,
        augmentations=[
            L(T.ResizeScale)(
                min_scale=0.1, max_scale=2.0, target_height=image_size, target_width=image_size
            ),
            L(T.FixedSizeCrop)(crop_size=(image_size, image_size)),
            L(T.RandomFlip)(horizontal=True),
        ],
        image_format="BGR",
        use_instance_mask=True,
        # boxes from the cropped masks (tight after the crop); box-only recipes
        # (use_instance_mask=False) keep the cropped boxes: DatasetMapper allows nothing else
        recompute_boxes="${.use_instance_mask}",
    ),
    total_batch_size=64,
    num_workers=8,
)
dataloader.test = L(build_detection_test_loader)(
    dataset=L(checked_dataset_dicts)(
        names="coco_2017_val", filter_empty=False, verify_images=False
    ),
    mapper=L(DatasetMapper)(
        is_train=False,
        augmentations=[L(T.ResizeShortestEdge)(short_edge_length=image_size, max_size=image_size)],
        image_format="${...train.mapper.image_format}",
    ),
    num_workers=4,
)
dataloader.evaluator = L(COCOEvaluator)(dataset_name="${..test.dataset.names}")
