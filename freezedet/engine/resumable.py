"""Exact resumption: a resumed run sees the same samples and random numbers as an uninterrupted one.

detectron2 restores weights, optimizer, scheduler and iteration on ``--resume`` but restarts the
sampler's index stream and leaves the RNGs freshly seeded, so a resumed run trains on different
batches with different RoI sampling. Here:

- :class:`RNGStateHook` checkpoints the python / numpy / torch (and CUDA) RNG states with the
  trainer and restores them on resume;
- :class:`ResumableTrainLoader` builds the train loader at the first training step, skipping
  the indices this rank already consumed before the start iteration (which
  :class:`TrainLoaderStart` hands it before training), and without drawing from the global
  torch RNG (``DataLoader`` draws its base seed from it).

Exactness holds for ``num_workers=0`` with a seeded sampler (``train.seed >= 0``) and batches
that consume exactly ``batch size`` indices (no aspect-ratio buckets left half full); otherwise
resumption is approximately, not exactly, the same stream.
"""

import itertools
import logging
import random

import numpy as np
import torch
from torch.utils.data import Sampler

from detectron2.config import instantiate
from detectron2.data.samplers import TrainingSampler
from detectron2.engine import HookBase
from detectron2.utils import comm

from .loaders import instantiate_loader
from .summary import check_classes

__all__ = [
    "RNGStateHook",
    "ResumableTrainLoader",
    "SkipSampler",
    "TrainLoaderStart",
    "WeightSyncCheck",
]


class RNGStateHook(HookBase):
    """Saves and restores all RNG states as part of the trainer's checkpointed state."""

    def state_dict(self):
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        # tensors and plain python values only: checkpoints stay loadable with weights_only=True
        state = {
            "python": random.getstate(),
            "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state):
        random.setstate(state["python"])
        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


class SkipSampler(Sampler):
    """Yields ``sampler``'s indices after skipping the first ``skip`` of them."""

    def __init__(self, sampler, skip: int):
        self.sampler = sampler
        self.skip = skip

    def __iter__(self):
        yield from itertools.islice(iter(self.sampler), self.skip, None)


def _build_train_loader(cfg, start_iter: int):
    train = cfg.dataloader.train
    dataset = instantiate(train.dataset)
    check_classes(cfg, train.dataset)
    seed = cfg.train.get("seed", -1)
    if train.get("sampler") is not None:
        sampler = instantiate(train.sampler)
    else:
        sampler = TrainingSampler(len(dataset), seed=seed if seed >= 0 else None)
    per_rank = train.total_batch_size // comm.get_world_size()
    if start_iter > 0:
        sampler = SkipSampler(sampler, start_iter * per_rank)
    return instantiate_loader(train, dataset=dataset, sampler=sampler)


class ResumableTrainLoader:
    """An iterable whose iterator builds ``cfg.dataloader.train`` at the first ``next()``,
    skipping the batches before the start iteration (:meth:`set_start_iter`; 0 unless set).

    detectron2's trainers call ``iter(loader)`` when constructed, before ``--resume`` has loaded
    the checkpoint; :class:`TrainLoaderStart` gives the loader the trainer's start iteration
    before the first step, when data is first needed.
    """

    def __init__(self, cfg):
        """
        Args:
            cfg: the LazyConfig (its ``dataloader.train`` and ``train.seed``).
        """
        self._cfg = cfg
        self._start_iter = 0

    def set_start_iter(self, start_iter: int):
        self._start_iter = start_iter

    def __iter__(self):
        # A DataLoader draws its base seed from torch's global RNG when its iterator starts,
        # which for detectron2's aspect-ratio grouping is at the first batch. A resumed run
        # builds the loader again, so keep that draw out of the training stream; the data path
        # itself uses numpy's RNG (augmentations), which is left to advance.
        torch_rng = torch.get_rng_state()
        it = iter(_build_train_loader(self._cfg, self._start_iter))
        first = next(it)
        torch.set_rng_state(torch_rng)
        yield first
        yield from it


class TrainLoaderStart(HookBase):
    """Before training, tells a :class:`ResumableTrainLoader` the trainer's start iteration
    (0, or the iteration after the checkpoint ``--resume`` loaded)."""

    def __init__(self, loader: ResumableTrainLoader):
        """
        Args:
            loader (ResumableTrainLoader): the trainer's data loader.
        """
        self._loader = loader

    def before_train(self):
        self._loader.set_start_iter(self.trainer.start_iter)


class WeightSyncCheck(HookBase):
    """After training, check that every rank holds the same weights (DDP desync would otherwise
    go unnoticed until evaluation looks wrong). A no-op in single-process runs."""

    def after_train(self):
        if comm.get_world_size() == 1:
            return
        model = self.trainer.model
        model = getattr(model, "module", model)
        with torch.no_grad():
            flat = torch.cat([p.detach().double().flatten().cpu() for p in model.parameters()])
            digest = [float(flat.sum()), float(flat.abs().sum()), float((flat * flat).sum())]
        digests = comm.all_gather(digest)
        if any(d != digests[0] for d in digests):
            raise RuntimeError(f"DDP ranks disagree on the weights after training: {digests}")
        logging.getLogger("freezedet").info(
            f"all {len(digests)} ranks hold identical weights (checksum {digests[0][0]:.6e})"
        )
