"""Augmentations detectron2 lacks: exact 90-degree rotations.

Overhead imagery (aerial, satellite, microscopy) has no "up": the 8 symmetries of the square
(4 rotations by 90 degrees, each with or without a flip) are all valid views. ``RandomRot90`` +
``RandomFlip`` draws them uniformly. They are exact (no interpolation, boxes stay tight, unlike
``T.RandomRotation``, whose boxes grow) and finite, so a frozen trunk's
:class:`~freezedet.modeling.backbone.FeatureCache` can still cache every view.
"""

import numpy as np

from detectron2.data.transforms import Augmentation
from fvcore.transforms.transform import Transform

__all__ = ["Rot90Transform", "RandomRot90"]


class Rot90Transform(Transform):
    """Rotate by ``k`` x 90 degrees counter-clockwise (``np.rot90``'s direction)."""

    def __init__(self, k: int, h: int, w: int):
        """
        Args:
            k (int): number of quarter turns, any integer (taken modulo 4).
            h, w (int): height and width of the input image.
        """
        super().__init__()
        self._set_attributes(locals())
        self.k = k % 4

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        assert img.shape[:2] == (self.h, self.w), (
            f"Rot90Transform for {self.h}x{self.w} images got a {img.shape[0]}x{img.shape[1]} "
            "image"
        )
        return np.ascontiguousarray(np.rot90(img, self.k, axes=(0, 1)))

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        """Continuous pixel coordinates: (x, y) in [0, w] x [0, h]."""
        x, y = coords[:, 0].copy(), coords[:, 1].copy()
        if self.k == 1:  # counter-clockwise: the right edge becomes the top edge
            coords[:, 0], coords[:, 1] = y, self.w - x
        elif self.k == 2:
            coords[:, 0], coords[:, 1] = self.w - x, self.h - y
        elif self.k == 3:
            coords[:, 0], coords[:, 1] = self.h - y, x
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation)

    def inverse(self) -> Transform:
        h, w = (self.w, self.h) if self.k % 2 else (self.h, self.w)
        return Rot90Transform(-self.k, h, w)


class RandomRot90(Augmentation):
    """Rotate by 0, 90, 180 or 270 degrees, uniformly (with ``T.RandomFlip``: all 8 symmetries
    of the square)."""

    def __init__(self, *, prob: float = 0.75):
        """
        Args:
            prob (float): probability of a non-zero rotation; 0.75 makes the 4 rotations
                equally likely.
        """
        super().__init__()
        assert 0 <= prob <= 1, f"RandomRot90 prob={prob} must be in [0, 1]"
        self.prob = prob

    def get_transform(self, image):
        h, w = image.shape[:2]
        k = int(np.random.randint(1, 4)) if self._rand_range() < self.prob else 0
        return Rot90Transform(k, h, w)
