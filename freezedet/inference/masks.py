"""Instance masks of a large image, each kept as the crop that holds it.

Full-image bitmasks cost H x W bytes per instance (12 MB each on a 4000 x 3000 image), which
tiled prediction over large images cannot afford; a crop to the mask's own extent costs about
its box's area. :class:`CroppedMasks` is an ``Instances`` field (indexing, ``cat``, ``len``)
that converts to COCO RLE (for results files) and polygons (for drawing) without ever building
a full-image mask.
"""

from typing import List, Sequence, Tuple

import cv2
import numpy as np
import pycocotools.mask as mask_util
import torch

__all__ = ["CroppedMasks"]


class CroppedMasks:
    """N binary masks on an image of size ``image_size``, mask i being the (h_i, w_i) bool
    array ``crops[i]`` placed with its top-left pixel at ``origins[i]`` = (x, y)."""

    def __init__(
        self,
        *,
        crops: Sequence[np.ndarray],
        origins: Sequence[Tuple[int, int]],
        image_size: Tuple[int, int],
    ):
        """
        Args:
            crops (list[np.ndarray]): 2-D bool arrays.
            origins (list[tuple[int, int]]): (x, y) of each crop's top-left pixel in the image.
            image_size (tuple[int, int]): (height, width) of the image.
        """
        assert len(crops) == len(origins), f"{len(crops)} crops != {len(origins)} origins"
        self.crops = list(crops)
        self.origins = [(int(x), int(y)) for x, y in origins]
        self.image_size = (int(image_size[0]), int(image_size[1]))
        height, width = self.image_size
        for crop, (x, y) in zip(self.crops, self.origins):
            h, w = crop.shape
            assert (
                0 <= x and x + w <= width and 0 <= y and y + h <= height
            ), f"crop of {w}x{h} at ({x}, {y}) outside the {width}x{height} image"

    @classmethod
    def from_bitmasks(cls, masks: torch.Tensor, offset=(0, 0), image_size=None) -> "CroppedMasks":
        """Crop (N, h, w) bitmasks (e.g. a tile's ``pred_masks``) to their extents and place
        them at ``offset`` = (x, y) in an image of ``image_size`` (default: (h, w))."""
        masks = masks.to("cpu", torch.bool).numpy()
        image_size = image_size or masks.shape[1:]
        crops, origins = [], []
        for m in masks:
            rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
            if len(rows) == 0:
                crops.append(np.zeros((0, 0), dtype=bool))
                origins.append(offset)
                continue
            y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
            crops.append(np.ascontiguousarray(m[y0:y1, x0:x1]))
            origins.append((offset[0] + x0, offset[1] + y0))
        return cls(crops=crops, origins=origins, image_size=image_size)

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, item) -> "CroppedMasks":
        if isinstance(item, torch.Tensor):
            item = item.cpu()
            if item.dtype == torch.bool:
                assert len(item) == len(self), f"bool index of {len(item)} != {len(self)} masks"
                item = item.nonzero().flatten()
            index = item.tolist()
        elif isinstance(item, slice):
            index = range(len(self))[item]
        else:
            index = [int(i) for i in np.atleast_1d(item)]
        return CroppedMasks(
            crops=[self.crops[i] for i in index],
            origins=[self.origins[i] for i in index],
            image_size=self.image_size,
        )

    @classmethod
    def cat(cls, masks_list: List["CroppedMasks"]) -> "CroppedMasks":
        sizes = {m.image_size for m in masks_list}
        assert len(sizes) == 1, f"cannot concatenate masks of different image sizes {sizes}"
        return cls(
            crops=[c for m in masks_list for c in m.crops],
            origins=[o for m in masks_list for o in m.origins],
            image_size=sizes.pop(),
        )

    def to(self, *args, **kwargs) -> "CroppedMasks":
        return self  # numpy crops live on the CPU

    def area(self) -> np.ndarray:
        return np.array([int(c.sum()) for c in self.crops], dtype=np.int64)

    def to_rle(self) -> List[dict]:
        """COCO RLE of each mask on the whole image (``counts`` as a str, json-ready), built
        from the crop's pixels alone (column-major run lengths)."""
        height, width = self.image_size
        rles = []
        for crop, (x, y) in zip(self.crops, self.origins):
            cols, rows = np.nonzero(crop.T)  # column-major order, as COCO RLE counts pixels
            index = (x + cols).astype(np.int64) * height + y + rows
            if len(index):
                breaks = np.flatnonzero(np.diff(index) != 1) + 1
                starts = index[np.r_[0, breaks]]
                ends = index[np.r_[breaks - 1, len(index) - 1]] + 1
                gaps = starts - np.r_[0, ends[:-1]]
                counts = np.stack([gaps, ends - starts], axis=1).ravel().tolist()
                counts.append(height * width - int(ends[-1]))
            else:
                counts = [height * width]
            rle = mask_util.frPyObjects({"counts": counts, "size": [height, width]}, height, width)
            rle["counts"] = rle["counts"].decode("utf-8")
            rles.append(rle)
        return rles

    def polygons(self) -> List[List[np.ndarray]]:
        """Outer contours of each mask in image coordinates (flat x, y arrays), for drawing."""
        out = []
        for crop, (x, y) in zip(self.crops, self.origins):
            if crop.size == 0:
                out.append([])
                continue
            contours, _ = cv2.findContours(
                crop.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
            )
            polys = [(c.reshape(-1, 2) + (x, y)).ravel().astype(np.float64) for c in contours]
            out.append([p for p in polys if len(p) >= 6])
        return out

    def __repr__(self) -> str:
        return f"CroppedMasks(num_instances={len(self)}, image_size={self.image_size})"
