"""detectron2's ``DefaultTrainer`` for the yacs route's one meta-architecture that needs its own
data and hook: AlignDet pre-training, as detectron2's yacs projects subclass it (DeepLab's
``build_train_loader``). Every other freezedet yacs config trains with ``DefaultTrainer`` as is.
"""

from typing import List

import detectron2.data.transforms as T
from detectron2.data import build_detection_train_loader
from detectron2.engine import DefaultTrainer, hooks

from ..data.two_view import TwoViewProposalMapper, proposal_dataset_dicts
from .ema import MomentumUpdateHook

__all__ = ["AlignDetTrainer", "two_view_augmentations"]

_FLIPS = {
    "horizontal": dict(horizontal=True, vertical=False),
    "vertical": dict(horizontal=False, vertical=True),
}


def two_view_augmentations(cfg):
    """(geometric, photometric) augmentations of each AlignDet view from ``cfg.INPUT.TWO_VIEW``:
    ``configs/common/data/deepforest_aligndet.py``'s scale jitter, crop, flips and colour
    jitter."""
    v = cfg.INPUT.TWO_VIEW
    bad = [f for f in v.FLIPS if f not in _FLIPS]
    if bad:
        raise ValueError(f"INPUT.TWO_VIEW.FLIPS: {bad} are not among {sorted(_FLIPS)}")
    geometric = [
        T.ResizeScale(
            min_scale=v.MIN_SCALE,
            max_scale=v.MAX_SCALE,
            target_height=v.SIZE,
            target_width=v.SIZE,
        ),
        T.FixedSizeCrop(crop_size=(v.SIZE, v.SIZE), pad_value=v.PAD_VALUE),
        *(T.RandomFlip(**_FLIPS[f]) for f in v.FLIPS),
    ]
    lo, hi = 1.0 - v.COLOUR_JITTER, 1.0 + v.COLOUR_JITTER
    photometric = (
        [
            T.RandomBrightness(intensity_min=lo, intensity_max=hi),
            T.RandomContrast(intensity_min=lo, intensity_max=hi),
            T.RandomSaturation(intensity_min=lo, intensity_max=hi),
        ]
        if v.COLOUR_JITTER
        else []
    )
    return geometric, photometric


class AlignDetTrainer(DefaultTrainer):
    """``DefaultTrainer`` for ``MODEL.META_ARCHITECTURE: "AlignDetPretrainer"``: two views per
    image of ``DATASETS.TRAIN`` with the proposals of ``DATASETS.PROPOSAL_FILES_TRAIN`` (one
    cache of ``tools/selective_search.py`` for all of them), and the momentum (EMA) update after
    every step, before the checkpointer (``MODEL.FREEZEDET.ALIGNDET.BASE_MOMENTUM``).

    Multi-GPU: the RoI classifier gets no loss in pre-training, and ``DefaultTrainer`` wraps the
    model in DDP without ``find_unused_parameters``; train on one process, or through
    ``tools/train_net.py`` and the LazyConfig recipe.
    """

    @classmethod
    def build_train_loader(cls, cfg):
        files = list(cfg.DATASETS.PROPOSAL_FILES_TRAIN)
        if len(files) != 1:
            raise ValueError(
                f"DATASETS.PROPOSAL_FILES_TRAIN={files}: AlignDet pre-training reads one proposal "
                f"cache for DATASETS.TRAIN={list(cfg.DATASETS.TRAIN)} "
                "(python tools/selective_search.py --dataset ... --output ...)"
            )
        geometric, photometric = two_view_augmentations(cfg)
        mapper = TwoViewProposalMapper(
            augmentations=geometric,
            photometric=photometric,
            image_format=cfg.INPUT.FORMAT,
            max_proposals=cfg.INPUT.TWO_VIEW.MAX_PROPOSALS,
        )
        dataset = proposal_dataset_dicts(list(cfg.DATASETS.TRAIN), proposal_file=files[0])
        return build_detection_train_loader(cfg, mapper=mapper, dataset=dataset)

    def build_hooks(self) -> List[hooks.HookBase]:
        ret = super().build_hooks()
        # right after the LR scheduler: before PreciseBN, the checkpointer and evaluation
        at = 1 + next(i for i, h in enumerate(ret) if isinstance(h, hooks.LRScheduler))
        base = self.cfg.MODEL.FREEZEDET.ALIGNDET.BASE_MOMENTUM
        ret.insert(at, MomentumUpdateHook(base_momentum=base))
        return ret
