# labelme's 3 VOC photos with polygon masks (PyPI labelme==6.3.1 sdist): a real mask dataset small
# enough for CPU tests. Train and test on the same photos: this checks the pipeline, not accuracy.
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
    dataset=L(checked_dataset_dicts)(names="labelme_voc_train"),
    mapper=L(DatasetMapper)(
        is_train=True,
        augmentations=[
            L(T.ResizeShortestEdge)(
                short_edge_length=(256, 320), max_size=512, sample_style="choice"
            ),
            L(T.RandomFlip)(horizontal=True),
        ],
        image_format="RGB",
        use_instance_mask=True,
    ),
    total_batch_size=2,
    num_workers=0,
)
dataloader.test = L(build_detection_test_loader)(
    dataset=L(checked_dataset_dicts)(names="labelme_voc_train", filter_empty=False),
    mapper=L(DatasetMapper)(
        is_train=False,
        augmentations=[L(T.ResizeShortestEdge)(short_edge_length=320, max_size=512)],
        image_format="${...train.mapper.image_format}",
    ),
    num_workers=0,
)
dataloader.evaluator = L(COCOEvaluator)(dataset_name="${..test.dataset.names}")
