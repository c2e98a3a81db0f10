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

TILE_SIZE = 400  # freezedet/data/deepforest.py cuts the source images into 400 px tiles


def scale_jitter(min_scale=0.8, max_scale=1.25, size=TILE_SIZE):
    """Resize by a random factor, then crop / pad back to ``size`` x ``size`` (a mild LSJ).

    Called while a config file is executed (not a lazy call); returns new LazyCall nodes each
    time. Used by the Cascade recipe and by the AlignDet views.
    """
    return [
        L(T.ResizeScale)(
            min_scale=min_scale, max_scale=max_scale, target_height=size, target_width=size
        ),
        # 128: zero after the Lite0 trunk's (x - 127) / 128
        L(T.FixedSizeCrop)(crop_size=(size, size), pad_value=128.0),
    ]


def colour_jitter(intensity=0.2):
    """Brightness, contrast and saturation each scaled by a random factor in 1 +- ``intensity``.

    Lighting and season differ between the 4 DeepForest source images. Called while a config
    file is executed; returns new LazyCall nodes each time.
    """
    lo, hi = 1.0 - intensity, 1.0 + intensity
    return [
        L(T.RandomBrightness)(intensity_min=lo, intensity_max=hi),
        L(T.RandomContrast)(intensity_min=lo, intensity_max=hi),
        L(T.RandomSaturation)(intensity_min=lo, intensity_max=hi),
    ]


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
