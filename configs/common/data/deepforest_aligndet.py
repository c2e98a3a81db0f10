# DeepForest tiles without labels, two views per tile with aligned selective-search proposals,
# for AlignDet box-domain pre-training. Build the proposal cache first (54 tiles, ~1 min):
#   python tools/selective_search.py --config-file configs/DeepForest/<aligndet pretrain recipe>.py
# (reads `dataloader.proposals` below; rerunning resumes an interrupted run).
from omegaconf import OmegaConf

import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from detectron2.data import build_detection_train_loader

from freezedet.data.two_view import TwoViewProposalMapper, proposal_dataset_dicts

from .deepforest import colour_jitter, scale_jitter

dataloader = OmegaConf.create()

# options of tools/selective_search.py (its --config-key default)
dataloader.proposals = dict(
    dataset="deepforest_all",
    output="freezedet://proposals/deepforest_all_selective_search_fast.json",
    mode="fast",
    max_side=800,
    min_size=8.0,
    max_aspect_ratio=3.0,
    nms_thresh=0.7,
    topk=100,
    seed=0,
    workers=2,
)

dataloader.train = L(build_detection_train_loader)(
    dataset=L(proposal_dataset_dicts)(
        names="${...proposals.dataset}", proposal_file="${...proposals.output}"
    ),
    mapper=L(TwoViewProposalMapper)(
        augmentations=[
            *scale_jitter(),
            L(T.RandomFlip)(horizontal=True),
            L(T.RandomFlip)(horizontal=False, vertical=True),
        ],
        photometric=colour_jitter(),
        image_format="RGB",
        max_proposals=32,
    ),
    total_batch_size=2,
    num_workers=2,
)
