"""Simple Copy-Paste augmentation (Ghiasi et al., "Simple Copy-Paste is a Strong Data
Augmentation Method for Instance Segmentation", CVPR 2021) as a detectron2 dataset mapper.

Two images are augmented independently (usually with Large Scale Jittering, see
:func:`build_lsj_augmentations`); a random subset of the objects of the second ("source") image is
pasted onto the first, the pasted union is subtracted from the masks of the first image's objects,
their boxes are recomputed and the (nearly) fully occluded ones are dropped.

Randomness policy (see :class:`CopyPasteDatasetMapper`): every call draws one per-sample
``np.random.Generator``. With ``seed=None`` it is seeded from numpy's global RNG (which detectron2
seeds per DataLoader worker), so runs are as reproducible as detectron2's own mappers. With an
integer ``seed`` it is ``default_rng([seed, key, n])`` where ``key`` is the record's ``image_id``
(or a CRC32 of its ``file_name``) and ``n`` counts how often this mapper object has mapped that
record before (an epoch counter): the same seed and the same sequence of records give identical
outputs, independently of anything else drawing from numpy's global RNG. Inside DataLoader worker
processes each worker owns a copy of the mapper, so ``n`` counts per worker; the output is then
reproducible for a fixed seed, sampler order and ``num_workers``. detectron2's augmentations draw
from numpy's global RNG, so they run under a global state temporarily seeded from the per-sample
generator (and restored afterwards). An explicit generator can also be passed per call.
"""

import contextlib
import logging
import os
import zlib
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import pycocotools.mask as mask_util
import torch

from detectron2.data import DatasetCatalog, DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.utils.visualizer import Visualizer

__all__ = [
    "CopyPasteDatasetMapper",
    "build_lsj_augmentations",
    "paste_instances",
    "draw_sample",
    "save_augmented_samples",
]

logger = logging.getLogger(__name__)


def build_lsj_augmentations(
    image_size: int = 1024,
    min_scale: float = 0.1,
    max_scale: float = 2.0,
    horizontal_flip: bool = True,
    pad_value: float = 128.0,
) -> List[T.Augmentation]:
    """Large Scale Jittering: random flip, resize so the image fits a square of side
    ``image_size * U(min_scale, max_scale)``, then a random ``image_size`` square crop padded
    (right/bottom, with ``pad_value``) to exactly ``image_size`` x ``image_size``."""
    assert (
        0 < min_scale <= max_scale
    ), f"need 0 < min_scale <= max_scale, got {min_scale, max_scale}"
    augs = [T.RandomFlip(horizontal=True)] if horizontal_flip else []
    return augs + [
        T.ResizeScale(
            min_scale=min_scale,
            max_scale=max_scale,
            target_height=image_size,
            target_width=image_size,
        ),
        T.FixedSizeCrop(crop_size=(image_size, image_size), pad_value=pad_value),
    ]


@contextlib.contextmanager
def _numpy_global_seed(seed: int):
    """detectron2's augmentations draw from ``np.random``; run them from a known state without
    disturbing whatever else uses the global generator."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _box_rects(boxes: torch.Tensor, image_size: Tuple[int, int]) -> torch.Tensor:
    """Integer pixel rectangles (x0, y0, x1, y1), end-exclusive, covering each float box."""
    h, w = image_size
    rects = torch.cat([boxes[:, :2].floor(), boxes[:, 2:].ceil()], dim=1).long()
    rects[:, 0::2] = rects[:, 0::2].clamp(0, w)
    rects[:, 1::2] = rects[:, 1::2].clamp(0, h)
    return rects


def _box_masks(boxes: torch.Tensor, image_size: Tuple[int, int]) -> torch.Tensor:
    masks = torch.zeros((len(boxes),) + tuple(image_size), dtype=torch.bool)
    for m, (x0, y0, x1, y1) in zip(masks, _box_rects(boxes, image_size).tolist()):
        m[y0:y1, x0:x1] = True
    return masks


def _occlude_boxes(boxes: torch.Tensor, union: torch.Tensor, min_area: int):
    """Box-only occlusion. The visible part of a box is its pixel rectangle minus the pasted
    union; the new box is the bounding box of that visible area, intersected with the old box.
    This is an approximation: the object need not fill its box, so the true visible extent of
    the object can be smaller than the visible part of its box.

    Returns:
        (new boxes, keep mask)
    """
    new = boxes.clone()
    keep = torch.ones(len(boxes), dtype=torch.bool)
    for i, (x0, y0, x1, y1) in enumerate(_box_rects(boxes, union.shape).tolist()):
        visible = ~union[y0:y1, x0:x1]
        area, full = int(visible.sum()), visible.numel()
        if area == full and area > 0:
            continue
        if area == 0 or area < min_area:
            keep[i] = False
            continue
        ys, xs = torch.nonzero(visible, as_tuple=True)
        tight = torch.tensor(
            [
                x0 + int(xs.min()),
                y0 + int(ys.min()),
                x0 + int(xs.max()) + 1,
                y0 + int(ys.max()) + 1,
            ],
            dtype=boxes.dtype,
        )
        new[i, :2] = torch.maximum(tight[:2], boxes[i, :2])
        new[i, 2:] = torch.minimum(tight[2:], boxes[i, 2:])
    return new, keep


def _alpha_composite(dst: torch.Tensor, src: torch.Tensor, union: torch.Tensor, sigma):
    if not sigma:
        return torch.where(union[None], src, dst)
    alpha = cv2.GaussianBlur(union.numpy().astype(np.float32), (0, 0), sigmaX=float(sigma))
    alpha = torch.from_numpy(alpha)[None]
    out = alpha * src.float() + (1 - alpha) * dst.float()
    return out.round().clamp(0, 255).to(dst.dtype)


def paste_instances(
    image: torch.Tensor,
    instances: Instances,
    src_image: torch.Tensor,
    src_instances: Instances,
    *,
    min_area: int = 10,
    blend_sigma: Optional[float] = None,
) -> Tuple[torch.Tensor, Instances]:
    """Paste all of ``src_instances`` (with their pixels from ``src_image``) onto ``image``.

    Both images are (C, H, W) of the same size. Instances have ``gt_boxes``, ``gt_classes`` and,
    unless the data is box-only, ``gt_masks`` (:class:`BitMasks`). With masks, the pasted region
    is the union of the pasted masks; every original mask loses that union and gets the tight
    box of what is left. Box-only, the pasted region is the union of the pasted boxes' pixel
    rectangles and originals get the box of their rectangle's visible part (an approximation,
    see :func:`_occlude_boxes`). An original is dropped when nothing is left of it, or when it
    was occluded and fewer than ``min_area`` pixels are left; unoccluded objects are kept
    whatever their size. Pasted objects come last.

    Args:
        image, instances: the target image and its objects.
        src_image, src_instances: the source image and the objects to paste from it.
        min_area: smallest visible area (pixels) an occluded original may keep.
        blend_sigma: if set, the union is blurred with a Gaussian of this sigma (pixels) and
            used as alpha, smoothing the pasted edges; masks stay the unblurred union.

    Returns:
        (new image, new instances)
    """
    assert image.shape == src_image.shape, (
        f"target image {tuple(image.shape)} and source image {tuple(src_image.shape)} differ; "
        "fit the source first"
    )
    size = tuple(image.shape[-2:])
    with_masks = instances.has("gt_masks")
    if with_masks:
        src_masks = src_instances.gt_masks.tensor
        src_boxes = src_instances.gt_masks.get_bounding_boxes()
    else:
        src_masks = _box_masks(src_instances.gt_boxes.tensor, size)
        src_boxes = src_instances.gt_boxes.clone()
    union = src_masks.any(dim=0) if len(src_masks) else torch.zeros(size, dtype=torch.bool)
    new_image = _alpha_composite(image, src_image, union, blend_sigma)

    kept = Instances(size)
    if with_masks:
        old = instances.gt_masks.tensor
        masks = old & ~union
        before, after = old.flatten(1).sum(1), masks.flatten(1).sum(1)
        keep = (after > 0) & ((after == before) | (after >= min_area))
        kept.gt_masks = BitMasks(masks[keep])
        kept.gt_boxes = kept.gt_masks.get_bounding_boxes()
    else:
        boxes, keep = _occlude_boxes(instances.gt_boxes.tensor, union, min_area)
        kept.gt_boxes = Boxes(boxes[keep])
    kept.gt_classes = instances.gt_classes[keep]

    pasted = Instances(size, gt_boxes=src_boxes, gt_classes=src_instances.gt_classes)
    if with_masks:
        pasted.gt_masks = BitMasks(src_masks)
    return new_image, Instances.cat([kept, pasted])


def _fit_source(image: torch.Tensor, instances: Instances, size: Tuple[int, int]):
    """Crop (bottom/right) or zero-pad the source image and its objects to ``size``, the way
    LSJ's fixed-size crops are laid out. Objects outside are emptied, not removed."""
    h, w = size
    ch, cw = min(h, image.shape[-2]), min(w, image.shape[-1])
    fitted = image.new_zeros(image.shape[:-2] + (h, w))
    fitted[..., :ch, :cw] = image[..., :ch, :cw]
    out = Instances(size, gt_classes=instances.gt_classes)
    if instances.has("gt_masks"):
        masks = torch.zeros((len(instances), h, w), dtype=torch.bool)
        masks[:, :ch, :cw] = instances.gt_masks.tensor[:, :ch, :cw]
        out.gt_masks = BitMasks(masks)
        out.gt_boxes = out.gt_masks.get_bounding_boxes()
    else:
        out.gt_boxes = instances.gt_boxes.clone()
        out.gt_boxes.clip(size)
    return fitted, out


def _nonempty(instances: Instances) -> torch.Tensor:
    if instances.has("gt_masks"):
        return instances.gt_masks.tensor.flatten(1).any(dim=1)
    return instances.gt_boxes.nonempty()


class CopyPasteDatasetMapper:
    """Training mapper applying Simple Copy-Paste on top of detectron2's :class:`DatasetMapper`.

    Each call maps the given record with ``augmentations``; with probability ``paste_prob`` it
    also maps a random record of ``source`` with its own independent draw of ``augmentations``,
    fits that image to the current image's size (bottom/right crop or zero pad, a no-op with
    LSJ's fixed-size crops), picks a random non-empty subset of its objects and pastes them with
    :func:`paste_instances`. The output is a standard detectron2 dict: ``"image"`` (uint8
    C, H, W tensor) and ``"instances"`` with ``gt_boxes``, ``gt_classes`` and, with
    ``use_instance_mask``, ``gt_masks`` as :class:`BitMasks` (boxes recomputed from them).
    Polygon / uncompressed-RLE annotations are rasterised to RLE before augmenting, so cropping
    needs no ``shapely``; this requires ``height`` and ``width`` in such records.

    With ``use_instance_mask=False`` the mapper runs box-only: pasted objects are rectangular
    crops of their boxes and occluded boxes are shrunk to the box of their visible part.

    See the module docstring for the randomness policy.
    """

    def __init__(
        self,
        *,
        is_train: bool = True,
        augmentations: Sequence[Union[T.Augmentation, T.Transform]],
        image_format: str = "BGR",
        use_instance_mask: bool = True,
        source: Union[str, Sequence[str], Sequence[Dict]],
        paste_prob: float = 1.0,
        max_paste_instances: Optional[int] = None,
        paste_fraction: Optional[float] = None,
        blend: bool = False,
        blend_sigma: float = 1.0,
        min_area: int = 10,
        seed: Optional[int] = None,
    ):
        """
        Args:
            is_train: if False, behaves exactly like :class:`DatasetMapper` (nothing is pasted).
            augmentations: applied independently to the current and to the source record, e.g.
                :func:`build_lsj_augmentations`.
            image_format: an image format supported by :func:`detection_utils.read_image`.
            use_instance_mask: paste along masks (records must have "segmentation"); if False,
                run box-only.
            source: where pasted objects come from: one or more registered dataset names
                (fetched from ``DatasetCatalog`` on first use, in the process that maps), or a
                list of dataset dicts. Records without non-crowd objects are ignored.
            paste_prob: probability of pasting onto a given image.
            max_paste_instances: at most this many objects are pasted (None: no limit).
            paste_fraction: paste ``max(1, round(paste_fraction * n))`` of the source's ``n``
                objects; if None, the number is uniform in [1, n] (a random subset as in the
                paper).
            blend: smooth the pasted edges with a Gaussian-blurred alpha (the paper reports
                no gain from it; off by default).
            blend_sigma: sigma of that Gaussian, in pixels.
            min_area: occluded originals with fewer visible pixels are dropped.
            seed: None to draw per-sample seeds from numpy's global RNG, or an int for the
                ``(seed, image key, per-record call count)`` policy of the module docstring.
        """
        assert 0.0 <= paste_prob <= 1.0, f"paste_prob must be in [0, 1], got {paste_prob}"
        assert (
            max_paste_instances is None or max_paste_instances >= 1
        ), f"max_paste_instances must be None or >= 1, got {max_paste_instances}"
        assert (
            paste_fraction is None or 0.0 < paste_fraction <= 1.0
        ), f"paste_fraction must be None or in (0, 1], got {paste_fraction}"
        assert blend_sigma > 0, f"blend_sigma must be > 0, got {blend_sigma}"
        assert min_area >= 1, f"min_area must be >= 1, got {min_area}"
        if isinstance(source, str):
            source = (source,)
        source = list(source)
        assert source, "source is empty: give dataset names or dataset dicts to paste from"
        kinds = {type(s) for s in source}
        assert kinds <= {str} or all(
            isinstance(s, dict) for s in source
        ), f"source must be dataset names or dataset dicts, not a mix of {sorted(map(str, kinds))}"
        self.is_train = is_train
        self.image_format = image_format
        self.use_instance_mask = use_instance_mask
        self.paste_prob = paste_prob
        self.max_paste_instances = max_paste_instances
        self.paste_fraction = paste_fraction
        self.blend_sigma = blend_sigma if blend else None
        self.min_area = min_area
        self.seed = seed
        # composed, not copied: detectron2 does reading, augmenting and annotation transforms
        self._mapper = DatasetMapper(
            is_train=is_train,
            augmentations=list(augmentations),
            image_format=image_format,
            use_instance_mask=use_instance_mask,
            instance_mask_format="bitmask",
            recompute_boxes=use_instance_mask,
        )
        self._source_names = source if isinstance(source[0], str) else None
        self._source_dicts = None if self._source_names else self._usable(source, "source")
        self._calls = defaultdict(int)

    def __repr__(self):
        return (
            f"CopyPasteDatasetMapper(augmentations={self._mapper.augmentations}, "
            f"paste_prob={self.paste_prob}, masks={self.use_instance_mask}, seed={self.seed})"
        )

    @staticmethod
    def _usable(dicts, origin):
        usable = [
            d for d in dicts if any(a.get("iscrowd", 0) == 0 for a in d.get("annotations", []))
        ]
        assert usable, f"{origin}: none of its {len(dicts)} records has a non-crowd annotation"
        return usable

    @property
    def source_dicts(self) -> List[Dict]:
        if self._source_dicts is None:
            dicts = [d for name in self._source_names for d in DatasetCatalog.get(name)]
            self._source_dicts = self._usable(dicts, f"source datasets {self._source_names}")
        return self._source_dicts

    def _record_rng(self, dataset_dict) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng(np.random.randint(2**63 - 1, dtype=np.int64))
        key = dataset_dict.get("image_id", dataset_dict.get("file_name"))
        if not (isinstance(key, (int, np.integer)) and key >= 0):
            key = zlib.crc32(str(key).encode())
        count = self._calls[key]
        self._calls[key] += 1
        return np.random.default_rng([self.seed, int(key), count])

    def _prepare(self, dataset_dict) -> Dict:
        """Shallow copy of the record with polygon masks turned into compressed RLE, and without
        "annotations" if it has no non-crowd object (DatasetMapper cannot recompute boxes of an
        empty mask list)."""
        annos = dataset_dict.get("annotations")
        if annos is not None and not any(a.get("iscrowd", 0) == 0 for a in annos):
            return {k: v for k, v in dataset_dict.items() if k != "annotations"}
        if not (self.use_instance_mask and annos):
            return dataset_dict
        out, new = dict(dataset_dict), []
        for a in annos:
            segm = a.get("segmentation")
            if segm is None:
                raise ValueError(
                    f"{dataset_dict.get('file_name')}: an annotation has no 'segmentation'; "
                    "use use_instance_mask=False for box-only data"
                )
            if isinstance(segm, list) or isinstance(segm.get("counts"), list):
                if "height" not in dataset_dict or "width" not in dataset_dict:
                    raise ValueError(
                        f"{dataset_dict.get('file_name')}: polygon masks need the record's "
                        "'height' and 'width' to be rasterised; add them to the dataset dicts"
                    )
                h, w = dataset_dict["height"], dataset_dict["width"]
                rle = mask_util.frPyObjects(segm, h, w)
                a = dict(a, segmentation=mask_util.merge(rle) if isinstance(rle, list) else rle)
            new.append(a)
        out["annotations"] = new
        return out

    def _map(self, dataset_dict, seed) -> Dict:
        with _numpy_global_seed(int(seed)):
            out = self._mapper(self._prepare(dataset_dict))
        size = tuple(out["image"].shape[-2:])
        inst = out.get("instances")
        if inst is None:
            inst = Instances(size, gt_boxes=Boxes(torch.zeros(0, 4)))
            inst.gt_classes = torch.zeros(0, dtype=torch.int64)
        if self.use_instance_mask and not inst.has("gt_masks"):
            inst.gt_masks = BitMasks(torch.zeros((0,) + size, dtype=torch.bool))
        out["instances"] = inst
        return out

    def _num_to_paste(self, n: int, rng: np.random.Generator) -> int:
        if self.paste_fraction is None:
            k = int(rng.integers(1, n + 1))
        else:
            k = max(1, int(round(self.paste_fraction * n)))
        return min(k, self.max_paste_instances or k)

    def __call__(self, dataset_dict: Dict, rng: Optional[np.random.Generator] = None) -> Dict:
        """
        Args:
            dataset_dict: one record in detectron2's dataset format (not modified).
            rng: use this generator instead of the mapper's seeding policy.
        """
        if rng is None:
            rng = self._record_rng(dataset_dict)
        seeds = rng.integers(2**32, size=2)
        if not self.is_train:
            with _numpy_global_seed(int(seeds[0])):
                return self._mapper(dataset_dict)
        out = self._map(dataset_dict, seeds[0])
        if rng.random() >= self.paste_prob:
            return out
        sources = self.source_dicts
        src = self._map(sources[int(rng.integers(len(sources)))], seeds[1])
        size = tuple(out["image"].shape[-2:])
        src_image, src_inst = _fit_source(src["image"], src["instances"], size)
        candidates = torch.nonzero(_nonempty(src_inst)).flatten().numpy()
        if len(candidates) == 0:
            return out
        k = self._num_to_paste(len(candidates), rng)
        chosen = torch.from_numpy(np.sort(rng.choice(candidates, size=k, replace=False)))
        out["image"], out["instances"] = paste_instances(
            out["image"],
            out["instances"],
            src_image,
            src_inst[chosen],
            min_area=self.min_area,
            blend_sigma=self.blend_sigma,
        )
        return out


def draw_sample(sample: Dict, *, metadata=None, image_format: str = "BGR") -> np.ndarray:
    """RGB uint8 rendering of a mapped sample with its boxes, masks and class names."""
    image = utils.convert_image_to_rgb(sample["image"].permute(1, 2, 0).numpy(), image_format)
    vis = Visualizer(image, metadata=metadata)
    inst = sample.get("instances")
    if inst is None or len(inst) == 0:
        return vis.output.get_image()
    classes = inst.gt_classes.tolist()
    names = metadata.get("thing_classes", None) if metadata is not None else None
    labels = [names[c] if names and c < len(names) else str(c) for c in classes]
    vis.overlay_instances(
        boxes=inst.gt_boxes.tensor.numpy(),
        # PolygonMasks (detectron2's DatasetMapper default) or BitMasks: the Visualizer takes both
        masks=inst.gt_masks if inst.has("gt_masks") else None,
        labels=labels,
    )
    return vis.output.get_image()


def save_augmented_samples(
    mapper,
    dataset_dicts: Sequence[Dict],
    output_dir: str,
    *,
    num_samples: int,
    metadata=None,
    image_format: str = "BGR",
) -> List[str]:
    """Map ``num_samples`` records (cycling through ``dataset_dicts``) and write their renderings
    as ``output_dir/NNNN_<image name>.png``. Returns the written paths."""
    assert len(dataset_dicts) > 0, "no dataset records to visualize"
    os.makedirs(output_dir, exist_ok=True)
    paths = []
    for i in range(num_samples):
        record = dataset_dicts[i % len(dataset_dicts)]
        rgb = draw_sample(mapper(record), metadata=metadata, image_format=image_format)
        stem = os.path.splitext(os.path.basename(str(record.get("file_name", "image"))))[0]
        path = os.path.join(output_dir, f"{i:04d}_{stem}.png")
        cv2.imwrite(path, rgb[:, :, ::-1])
        paths.append(path)
    return paths
