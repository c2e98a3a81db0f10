# DeepForest aerial tree crowns (real images from the `deepforest` PyPI package), 400 px tiles,
# train/val split by source region (freezedet/data/deepforest.py). Sized for CPU.
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

dataloader = OmegaConf.create()

dataloader.train = L(build_detection_train_loader)(
    dataset=L(checked_dataset_dicts)(names="deepforest_train"),
    mapper=L(DatasetMapper)(
        is_train=True,
        augmentations=[
            L(T.RandomFlip)(horizontal=True),
            # aerial images have no "up": vertical flips are as valid as horizontal ones
            L(T.RandomFlip)(horizontal=False, vertical=True),
        ],
        image_format="RGB",
        use_instance_mask=False,
    ),
    total_batch_size=2,
    num_workers=2,
)

dataloader.test = L(build_detection_test_loader)(
    dataset=L(checked_dataset_dicts)(names="deepforest_val", filter_empty=False),
    mapper=L(DatasetMapper)(
        is_train=False,
        augmentations=[],
        image_format="${...train.mapper.image_format}",
    ),
    num_workers=2,
)

dataloader.evaluator = L(COCOEvaluator)(
    dataset_name="${..test.dataset.names}",
    # dense tree crowns: tiles hold more than COCO's 100 objects
    max_dets_per_image=300,
    # DeepForest's own measure: box precision / recall at IoU 0.4, scores >= 0.1 (its config)
    box_pr=dict(iou_threshold=0.4, score_threshold=0.1),
)
