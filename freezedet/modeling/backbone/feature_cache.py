"""A cache of frozen-trunk features, for training with a finite input pipeline.

A frozen trunk maps the same input to the same features in every epoch. When the training
augmentations are deterministic up to a finite choice (flips, 90-degree rotations, a finite set
of sizes), every (image, view) pair recurs, and its trunk features can be computed once and
reused.

Keys are a BLAKE2b hash of the *preprocessed, padded* per-image input tensor (normalized pixels,
its shape and dtype). This needs no cooperation from the data mapper and cannot go stale: a
different view, size or padding is a different key. It also means a cache under random scale
jitter or photometric augmentation would be correct but useless (no key ever recurs, the budget
fills with dead entries); the engine refuses such pipelines before training
(:func:`freezedet.engine.summary.check_feature_cache_config`).

Per-image features are sliced from the batch output: this relies on the frozen trunk being
batch-independent (eval-mode, frozen statistics), which frozen freezedet trunks are. Features of a
cached image may then come from a different batch than in an uncached run: equal up to float
rounding of the batched convolution.

Storage: RAM (tensors in a dict) or one memory-mapped file (``path``) of ``budget_mb``; entries
are appended until the budget is spent, after which new views are computed every time (logged
once). Nothing is evicted: with a finite pipeline, a full cache means the budget is too small for
the dataset, and LRU would only churn.
"""

import hashlib
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

__all__ = ["FeatureCache"]

logger = logging.getLogger(__name__)


class FeatureCache:
    """Per-(image, view) trunk features in RAM or a memory-mapped file, within a size budget."""

    def __init__(self, *, budget_mb: float = 2048.0, path: Optional[str] = None):
        """
        Args:
            budget_mb (float): the most megabytes of features to keep.
            path (str or None): a file for memory-mapped storage (created, ``budget_mb`` large,
                overwritten); None keeps features in RAM.
        """
        if budget_mb <= 0:
            raise ValueError(f"FeatureCache budget_mb={budget_mb} must be > 0")
        self.budget_bytes = int(budget_mb * 2**20)
        self.path = path
        self._index: Dict[bytes, List[Tuple[int, torch.dtype, Tuple[int, ...]]]] = {}
        self._ram: Dict[bytes, List[torch.Tensor]] = {}
        self._used = 0
        self._mmap = None
        self._full_logged = False
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._ram) + len(self._index)

    @property
    def used_mb(self) -> float:
        return self._used / 2**20

    def __deepcopy__(self, memo):
        # a copied model starts with an empty cache of the same kind (never the same file)
        return FeatureCache(budget_mb=self.budget_bytes / 2**20, path=None)

    @staticmethod
    def key(image: torch.Tensor) -> bytes:
        """The cache key of one preprocessed, padded image (C, H, W)."""
        data = image.detach().contiguous().cpu().numpy()
        h = hashlib.blake2b(data.tobytes(), digest_size=16)
        h.update(repr((tuple(data.shape), str(data.dtype))).encode())
        return h.digest()

    def get(self, key: bytes, device) -> Optional[List[torch.Tensor]]:
        if key in self._ram:
            return [t.to(device) for t in self._ram[key]]
        if key in self._index:
            out = []
            for offset, dtype, shape in self._index[key]:
                n = int(np.prod(shape)) * torch.empty((), dtype=dtype).element_size()
                raw = np.array(self._mmap[offset : offset + n])  # a copy out of the mapping
                out.append(torch.from_numpy(raw).view(dtype).reshape(shape).to(device))
            return out
        return None

    def put(self, key: bytes, feats: Sequence[torch.Tensor]) -> bool:
        """Store one image's features; False (and a log line, once) when over budget."""
        size = sum(f.numel() * f.element_size() for f in feats)
        if self._used + size > self.budget_bytes:
            if not self._full_logged:
                logger.warning(
                    f"FeatureCache full: {len(self)} views, {self.used_mb:.0f} MB of "
                    f"{self.budget_bytes / 2**20:.0f} MB; views not cached are recomputed every "
                    "time. Raise budget_mb to cache the whole input pipeline."
                )
                self._full_logged = True
            return False
        if self.path is None:
            self._ram[key] = [f.detach().cpu().clone() for f in feats]
            self._used += size
        else:
            self._index[key] = [self._write(f) for f in feats]
        return True

    def _write(self, f: torch.Tensor):
        if self._mmap is None:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self._mmap = np.memmap(self.path, dtype=np.uint8, mode="w+", shape=(self.budget_bytes,))
        data = f.detach().cpu().contiguous()
        raw = data.view(torch.uint8).reshape(-1).numpy()
        self._mmap[self._used : self._used + raw.size] = raw
        entry = (self._used, data.dtype, tuple(data.shape))
        self._used += raw.size
        return entry

    def __call__(self, x: torch.Tensor, compute) -> List[torch.Tensor]:
        """Features of batch ``x`` (N, C, H, W): cached views looked up, the others computed by
        ``compute(x_subset)`` (a list of (n, ...) feature maps) and stored."""
        keys = [self.key(img) for img in x]
        found = [self.get(k, x.device) for k in keys]
        missing = [i for i, f in enumerate(found) if f is None]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            sub = x if len(missing) == len(keys) else x[missing]
            computed = compute(sub)
            for j, i in enumerate(missing):
                found[i] = [f[j] for f in computed]
                self.put(keys[i], found[i])
        return [torch.stack([f[level] for f in found]) for level in range(len(found[0]))]
