# LVIS v1 with LSJ + Simple Copy-Paste, repeat-factor sampling (LVIS paper, t = 0.001) and LVIS
# evaluation (AP, APr / APc / APf). Files are read from $DETECTRON2_DATASETS (default ./datasets):
# lvis/lvis_v1_{train,val}.json and coco/{train,val}2017/ (a missing file is an error that says
# what to download); or point json_file / image_root at a copy.
from detectron2.config import LazyCall as L
from detectron2.data.samplers import RepeatFactorTrainingSampler

from freezedet.data.lvis import builtin_dataset_path, lvis_json_dataset
from freezedet.evaluation import LVISEvaluator

from .coco_lsj_copypaste import dataloader

dataloader.train.dataset = L(lvis_json_dataset)(
    name="lvis_v1_train_json",
    json_file=builtin_dataset_path("lvis", "lvis_v1_train.json"),
    image_root=builtin_dataset_path("coco"),
    verify_images=False,  # decoding ~100k COCO images on the first run takes long
)
dataloader.train.sampler = L(RepeatFactorTrainingSampler)(
    repeat_factors=L(RepeatFactorTrainingSampler.repeat_factors_from_category_frequency)(
        dataset_dicts="${dataloader.train.dataset}", repeat_thresh=0.001
    )
)
dataloader.train.mapper.source = "${..dataset.name}"
dataloader.test.dataset = L(lvis_json_dataset)(
    name="lvis_v1_val_json",
    json_file=builtin_dataset_path("lvis", "lvis_v1_val.json"),
    image_root=builtin_dataset_path("coco"),
    filter_empty=False,
    verify_images=False,
)
dataloader.evaluator = L(LVISEvaluator)(
    dataset_name="${..test.dataset.name}", max_dets_per_image=300, backend="faster_coco_eval"
)
