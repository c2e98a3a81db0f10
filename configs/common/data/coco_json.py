# Your own COCO-format data (README "Your own data"): a json + image folder for training and one
# for evaluation, through freezedet's validator (missing / truncated / non-8-bit images, bad
# boxes: README "Bad input"). Set the four paths (None: not set, an error when loaded) and the
# dataset names.
from omegaconf import OmegaConf

import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from detectron2.data import (
    DatasetMapper,
    build_detection_test_loader,
    build_detection_train_loader,
)

from freezedet.data.coco_json import coco_json_dataset
from freezedet.evaluation import COCOEvaluator

dataloader = OmegaConf.create()
dataloader.train = L(build_detection_train_loader)(
    dataset=L(coco_json_dataset)(name="mydata_train", json_file=None, image_root=None),
    mapper=L(DatasetMapper)(
        is_train=True,
        # shortest side 512-768 px (COCO recipes: 640-800), longest at most 1333; small objects
        # may need larger images, large images on CPU smaller ones
        augmentations=[
            L(T.ResizeShortestEdge)(
                short_edge_length=(512, 576, 640, 704, 768), max_size=1333, sample_style="choice"
            ),
            L(T.RandomFlip)(horizontal=True),
        ],
        image_format="RGB",
        use_instance_mask=False,
    ),
    total_batch_size=2,
    num_workers=2,
)
dataloader.test = L(build_detection_test_loader)(
    dataset=L(coco_json_dataset)(
        name="mydata_val", json_file=None, image_root=None, filter_empty=False
    ),
    mapper=L(DatasetMapper)(
        is_train=False,
        augmentations=[L(T.ResizeShortestEdge)(short_edge_length=640, max_size=1333)],
        image_format="${...train.mapper.image_format}",
    ),
    num_workers=2,
)
dataloader.evaluator = L(COCOEvaluator)(
    dataset_name="${..test.dataset.name}",
    # AP counts 2x the objects of the busiest test image (at least COCO's 100), not a fixed 100
    max_dets_per_image="auto",
)
