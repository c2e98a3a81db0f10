# Your own COCO-format data (docs/getting_started.md, "Your own data"): a json + image folder for
# training and one for evaluation, through freezedet's validator (missing / truncated / non-8-bit
# images, bad boxes: docs/reliability.md). Set the four paths (None: not set, an error when
# loaded) and the dataset names. `image_size` is the test images' shortest side; training draws
# it from 0.8-1.2x that: one override (`dataloader.image_size=384`) resizes train and test alike.
from omegaconf import OmegaConf

import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from detectron2.data import (
    DatasetMapper,
    build_detection_test_loader,
    build_detection_train_loader,
)

from freezedet.data.coco_json import coco_json_dataset
from freezedet.data.resize import ResizeShortestEdgeScaled
from freezedet.evaluation import COCOEvaluator

dataloader = OmegaConf.create()
# shortest side at test (COCO recipes: 800); small objects may need larger images, large images
# on CPU smaller ones (OwnData/*_cpu.py: 448)
dataloader.image_size = 640
dataloader.train = L(build_detection_train_loader)(
    dataset=L(coco_json_dataset)(name="mydata_train", json_file=None, image_root=None),
    mapper=L(DatasetMapper)(
        is_train=True,
        # shortest side one of 0.8-1.2 x image_size (512-768 px at 640), longest at most 1333
        augmentations=[
            L(ResizeShortestEdgeScaled)(
                size="${.....image_size}", scales=(0.8, 0.9, 1.0, 1.1, 1.2), max_size=1333
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
        augmentations=[
            L(T.ResizeShortestEdge)(short_edge_length="${.....image_size}", max_size=1333)
        ],
        image_format="${...train.mapper.image_format}",
    ),
    num_workers=2,
)
dataloader.evaluator = L(COCOEvaluator)(
    dataset_name="${..test.dataset.name}",
    # AP counts 2x the objects of the busiest test image (at least COCO's 100), not a fixed 100
    max_dets_per_image="auto",
)
