# COCO 2017 with LSJ + Simple Copy-Paste (Ghiasi et al., CVPR 2021): each image gets objects of
# another, independently jittered training image. Datasets by name only: detectron2 finds them
# under $DETECTRON2_DATASETS (default ./datasets).
from detectron2.config import LazyCall as L

from freezedet.data.copy_paste import CopyPasteDatasetMapper, build_lsj_augmentations

from .coco_lsj import dataloader, image_size

dataloader.train.mapper = L(CopyPasteDatasetMapper)(
    is_train=True,
    augmentations=L(build_lsj_augmentations)(image_size=image_size, min_scale=0.1, max_scale=2.0),
    image_format="BGR",
    use_instance_mask=True,
    source="${..dataset.names}",
    paste_prob=1.0,
)
dataloader.evaluator.backend = "faster_coco_eval"
