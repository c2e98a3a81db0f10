"""DeepForest tree crowns: real aerial images with Pascal VOC boxes, shipped in PyPI ``deepforest``.

``deepforest/data/`` (the package is installed ``--no-deps`` and never imported: only its data
folder is read) holds 5 RGB PNG tiles of NEON airborne imagery, 4 of them with a VOC XML file:

=============================================  ===========  =====  ==========================
image                                          size (WxH)   boxes  used as
=============================================  ===========  =====  ==========================
2019_YELL_2_528000_4978000_image_crop2         2299 x 2472    574  split by region (below)
2019_YELL_2_541000_4977000_image_crop          1249 x 1035    279  split by region
OSBS_029                                       400 x 400       61  train (one tile)
SOAP_061                                       400 x 400       37  val (one tile, another site)
SOAP_031 (no XML)                              400 x 400        0  unlabeled only
=============================================  ===========  =====  ==========================

**Classes.** The XML class names are "Tree" (YELL, OSBS) and "Alive" / "Dead" (SOAP_061 only);
all map to the single class ``tree`` (:data:`CLASS_MAP`): the alive/dead split exists on one
400 px image, too few boxes to learn or evaluate it. Any other name is an error, so new data
cannot be merged silently.

**Boxes.** VOC coordinates are 1-based inclusive pixel indices (``xmax`` reaches the image
width); like detectron2's own VOC loader, ``xmin - 1, ymin - 1, xmax, ymax`` gives XYXY_ABS.

**Split by source region.** For each large image the right-most strip (``val_fraction`` of the
width, at least one tile wide) is the validation region; the training region ends ``gap`` px
before it. The gap (128 px) is wider than the widest crown (107 px), so no crown reaches into
both regions. Each region is tiled on its own (``tile_size`` px, stride = tile size, the last row
and column aligned to the region's edge), so no tile crosses the border and no validation tile
overlaps a training tile. Boxes are clipped to their tile; a clipped box is kept if it keeps
>= ``min_visible`` of its area and is >= ``min_size`` px on both sides. At most
``max_empty_tiles`` tree-less tiles are kept per region (the first ones in raster order).

With the defaults (400 px tiles, ``val_fraction=0.25``, ``gap=128``, ``min_visible=0.5``,
``min_size=4``, ``max_empty_tiles=2``):

=====  =====  ===========  ============================================================
split  tiles  tile boxes   per source image (tiles / boxes)
=====  =====  ===========  ============================================================
train     35          645  crop2 28 / 378, crop 6 / 206, OSBS_029 1 / 61 (2 tiles empty)
val       18          420  crop2 14 / 296, crop 3 / 87, SOAP_061 1 / 37
=====  =====  ===========  ============================================================

Counted by crown centre, the regions hold 542 (train) and 320 (val) distinct crowns; 89 lie
in the gaps. Tile boxes count more because the last row / column of a region overlaps its
neighbour, so such crowns appear in two tiles of the same split.

Registered names (cheap: tiles are cut and written the first time a name is requested):

- ``deepforest_train``, ``deepforest_val``: the splits above.
- ``deepforest_train_{10,25,50}pct``: deterministic, nested tile subsets of the training split,
  for low-data points; :func:`register_deepforest_subset` registers other fractions / seeds.
- ``deepforest_unlabeled``: training tiles + SOAP_031, annotations removed (self-supervised
  pre-training without touching validation images).
- ``deepforest_all``: every tile (train, val, SOAP_031), annotations removed.

Tiles are written once as PNG files (temp file + rename, so concurrent processes never read a
partial file) under ``data_root()/deepforest_tiles/<hash>/``, the hash covering the tiling
parameters and the source annotations, so standard detectron2 mappers read them from disk.
"""

import hashlib
import importlib.metadata
import json
import logging
import os
import random
import xml.etree.ElementTree as ET
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from ..utils.file_io import atomic_open, data_root

__all__ = [
    "CLASS_MAP",
    "SOURCES",
    "deepforest_data_dir",
    "parse_voc_xml",
    "tile_dataset",
    "subset",
    "load_deepforest",
    "register_deepforest",
    "register_deepforest_subset",
]

logger = logging.getLogger(__name__)

# source image (without .png) -> how it is used; "region" images are split train/val by region
SOURCES = {
    "2019_YELL_2_528000_4978000_image_crop2": "region",
    "2019_YELL_2_541000_4977000_image_crop": "region",
    "OSBS_029": "train",
    "SOAP_061": "val",
    "SOAP_031": "unlabeled",
}
CLASS_MAP = {"Tree": "tree", "Alive": "tree", "Dead": "tree"}
THING_CLASSES = ["tree"]
FRACTIONS = (0.1, 0.25, 0.5)
# bump when the tiling logic changes, so caches made by older code are not reused
_TILING_VERSION = 2


def deepforest_data_dir() -> str:
    """``deepforest/data`` of the installed package, located without importing it."""
    try:
        dist = importlib.metadata.distribution("deepforest")
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            "The PyPI package 'deepforest' is not installed; it ships the DeepForest images. "
            "Run `make install` (it installs deepforest with --no-deps)."
        ) from None
    path = str(dist.locate_file("deepforest/data"))
    if not os.path.isdir(path):
        raise FileNotFoundError(f"deepforest is installed but {path} does not exist; reinstall it")
    return path


def parse_voc_xml(path: str) -> Tuple[Tuple[int, int], np.ndarray]:
    """Read a Pascal VOC file of tree boxes.

    Returns:
        ((width, height), boxes): boxes is a float64 (N, 4) XYXY_ABS array (see module
        docstring for the coordinate convention), clipped to the image.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"annotation file {path} does not exist; reinstall deepforest")
    try:
        root = ET.parse(path).getroot()
        size = root.find("size")
        width, height = int(size.find("width").text), int(size.find("height").text)
        boxes = []
        for i, obj in enumerate(root.iter("object")):
            name = obj.find("name").text
            if name not in CLASS_MAP:
                raise ValueError(f"object {i} has class {name!r}, not one of {sorted(CLASS_MAP)}")
            bb = obj.find("bndbox")
            x0, y0, x1, y1 = (float(bb.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax"))
            boxes.append([x0 - 1, y0 - 1, x1, y1])
    except (ET.ParseError, AttributeError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a valid Pascal VOC annotation file ({e})") from e
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    return (width, height), boxes


def _read_image(path: str) -> np.ndarray:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"DeepForest image {path} does not exist; reinstall deepforest")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except OSError as e:  # PIL's UnidentifiedImageError and truncated-file errors
        raise ValueError(f"{path}: cannot read the image ({e}); reinstall deepforest") from e


def _image_size(path: str) -> Tuple[int, int]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"DeepForest image {path} does not exist; reinstall deepforest")
    try:
        with Image.open(path) as im:
            return im.size
    except OSError as e:
        raise ValueError(f"{path}: cannot read the image ({e}); reinstall deepforest") from e


def _positions(start: int, end: int, tile: int) -> List[int]:
    """Tile origins covering [start, end): stride = tile, the last one aligned to ``end``."""
    assert end - start >= tile, f"region [{start}, {end}) is narrower than one tile ({tile} px)"
    pos = list(range(start, end - tile + 1, tile))
    if pos[-1] + tile < end:
        pos.append(end - tile)
    return pos


def _regions(name: str, width: int, tile: int, val_fraction: float, gap: int):
    """{split: (x0, x1)}: full-height column ranges of an image."""
    role = SOURCES[name]
    if role != "region":
        return {role: (0, width)}
    val_w = max(tile, int(round(width * val_fraction)))
    train_end = width - val_w - gap
    assert train_end >= tile, (
        f"{name}: {width} px is too narrow for a {tile} px train region, a {gap} px gap and a "
        f"{val_w} px val region; use smaller tiles or val_fraction"
    )
    return {"train": (0, train_end), "val": (width - val_w, width)}


def _clip(boxes: np.ndarray, x0: int, y0: int, tile: int, min_visible: float, min_size: float):
    clipped = boxes.copy()
    clipped[:, [0, 2]] = np.clip(clipped[:, [0, 2]], x0, x0 + tile) - x0
    clipped[:, [1, 3]] = np.clip(clipped[:, [1, 3]], y0, y0 + tile) - y0
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    w, h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    keep = (w >= min_size) & (h >= min_size) & (w * h >= min_visible * area)
    return clipped[keep]


def _save_png_atomic(array: np.ndarray, path: str):
    with atomic_open(path, "wb") as f:
        Image.fromarray(array).save(f, format="PNG")


def _cache_key(src: str, params: dict) -> str:
    h = hashlib.sha1(json.dumps(params, sort_keys=True).encode())
    for name in SOURCES:
        xml = os.path.join(src, name + ".xml")
        if os.path.isfile(xml):
            with open(xml, "rb") as f:
                h.update(f.read())
        png = os.path.join(src, name + ".png")
        h.update(str(os.path.getsize(png) if os.path.isfile(png) else -1).encode())
    return h.hexdigest()[:12]


def _record(path: str, source: str, x: int, y: int, tile: int, boxes: np.ndarray) -> dict:
    # stable across runs and machines: derived from the source image and the tile rectangle
    image_id = int(hashlib.sha1(f"{source}:{x}:{y}:{tile}".encode()).hexdigest()[:8], 16)
    return {
        "file_name": path,
        "image_id": image_id,
        "height": tile,
        "width": tile,
        "source_image": source,
        "tile_box": (x, y, x + tile, y + tile),
        "annotations": [
            {
                "bbox": [float(v) for v in b],
                "bbox_mode": BoxMode.XYXY_ABS,
                "category_id": 0,
                "iscrowd": 0,
            }
            for b in boxes
        ],
    }


def tile_dataset(
    *,
    tile_size: int = 400,
    val_fraction: float = 0.25,
    gap: int = 128,
    min_visible: float = 0.5,
    min_size: float = 4.0,
    max_empty_tiles: int = 2,
    cache_dir: str = None,
) -> Dict[str, List[dict]]:
    """Tile the DeepForest images as described in the module docstring.

    Args:
        tile_size (int): tile side in px, at most 400 (the smallest images' side, which are
            tiled like the large ones' regions when tile_size < 400).
        val_fraction (float): width fraction of each large image that goes to validation.
        gap (int): px between the training and validation regions of a large image.
        min_visible (float): fraction of its area a clipped box must keep to stay.
        min_size (float): minimum width and height (px) of a clipped box.
        max_empty_tiles (int): tiles without boxes kept per region.
        cache_dir (str): where tile PNGs go; default ``data_root()/deepforest_tiles/<hash>``.

    Returns:
        dict: ``{"train": records, "val": records, "unlabeled": records}`` (``unlabeled`` holds
        SOAP_031's tile only). Records carry detectron2's standard keys plus ``source_image``
        and ``tile_box`` (the tile's XYXY rectangle in the source image).
    """
    assert (
        0 < tile_size <= 400
    ), f"tile_size={tile_size}: must be in (0, 400], the size of the smallest images"
    assert 0 < val_fraction < 1, f"val_fraction={val_fraction} must be in (0, 1)"
    assert gap >= 0 and max_empty_tiles >= 0, (gap, max_empty_tiles)
    src = deepforest_data_dir()
    params = dict(
        tile_size=tile_size,
        val_fraction=val_fraction,
        gap=gap,
        min_visible=min_visible,
        min_size=min_size,
        max_empty_tiles=max_empty_tiles,
        version=_TILING_VERSION,
    )
    cache_dir = cache_dir or os.path.join(data_root(), "deepforest_tiles", _cache_key(src, params))
    os.makedirs(cache_dir, exist_ok=True)
    out = {"train": [], "val": [], "unlabeled": []}
    for name, role in SOURCES.items():
        image_path = os.path.join(src, name + ".png")
        if role == "unlabeled":
            (width, height), boxes = _image_size(image_path), np.zeros((0, 4))
        else:
            (width, height), boxes = parse_voc_xml(os.path.join(src, name + ".xml"))
        image = None
        for split, (rx0, rx1) in _regions(name, width, tile_size, val_fraction, gap).items():
            n_empty = 0
            for y in _positions(0, height, tile_size):
                for x in _positions(rx0, rx1, tile_size):
                    tile_boxes = _clip(boxes, x, y, tile_size, min_visible, min_size)
                    if len(tile_boxes) == 0 and role != "unlabeled":
                        n_empty += 1
                        if n_empty > max_empty_tiles:
                            continue
                    path = os.path.join(cache_dir, f"{name}_x{x}_y{y}.png")
                    if not os.path.isfile(path):
                        if image is None:
                            image = _read_image(image_path)
                            if image.shape[:2] != (height, width):
                                raise ValueError(
                                    f"{image_path} is {image.shape[1]}x{image.shape[0]} px but "
                                    f"its annotation file says {width}x{height}"
                                )
                        _save_png_atomic(image[y : y + tile_size, x : x + tile_size], path)
                    out[split].append(_record(path, name, x, y, tile_size, tile_boxes))
    ids = [r["image_id"] for records in out.values() for r in records]
    assert len(set(ids)) == len(ids), "tile image_id collision; change the id derivation"
    logger.info(
        "DeepForest tiles in %s: %s",
        cache_dir,
        ", ".join(f"{k} {len(v)}" for k, v in out.items()),
    )
    return out


def subset(records: List[dict], fraction: float, seed: int = 0) -> List[dict]:
    """A deterministic random subset of ``fraction`` of the records (at least one), in their
    original order. For one seed, smaller fractions give subsets of larger ones."""
    assert 0 < fraction <= 1, f"fraction={fraction} must be in (0, 1]"
    order = sorted(range(len(records)), key=lambda i: records[i]["image_id"])
    random.Random(seed).shuffle(order)
    n = max(1, round(fraction * len(records)))
    return [records[i] for i in sorted(order[:n])]


_TILES = {}


def _tiles() -> Dict[str, List[dict]]:
    if "default" not in _TILES:
        _TILES["default"] = tile_dataset()
    return _TILES["default"]


def load_deepforest(split: str, fraction: float = 1.0, seed: int = 0) -> List[dict]:
    """Records of one split: "train", "val", "unlabeled" or "all" (the latter two without
    annotations); ``fraction`` < 1 takes :func:`subset` of it. Tiles are made on first use."""
    tiles = _tiles()
    if split in ("train", "val"):
        records = tiles[split]
    elif split == "unlabeled":
        records = tiles["train"] + tiles["unlabeled"]
    elif split == "all":
        records = tiles["train"] + tiles["val"] + tiles["unlabeled"]
    else:
        raise KeyError(f"unknown DeepForest split {split!r}; use train, val, unlabeled or all")
    if fraction < 1:
        records = subset(records, fraction, seed)
    if split in ("unlabeled", "all"):
        return [{k: v for k, v in r.items() if k != "annotations"} for r in records]
    return [dict(r, annotations=[dict(a) for a in r["annotations"]]) for r in records]


def _register(name: str, split: str, fraction: float = 1.0, seed: int = 0):
    if name in DatasetCatalog.list():
        return
    DatasetCatalog.register(name, lambda: load_deepforest(split, fraction, seed))
    MetadataCatalog.get(name).set(
        thing_classes=THING_CLASSES, evaluator_type="coco", source="PyPI deepforest, data/"
    )


def register_deepforest_subset(fraction: float, *, seed: int = 0, split: str = "train") -> str:
    """Register a deterministic ``fraction`` of a split's tiles (see :func:`subset`).

    Returns:
        str: the name, ``deepforest_{split}_{100 * fraction}pct``, plus ``_seed{seed}`` if
        seed != 0. Registering the same name again is a no-op.
    """
    assert 0 < fraction <= 1, f"fraction={fraction} must be in (0, 1]"
    name = f"deepforest_{split}_{100 * fraction:g}pct" + (f"_seed{seed}" if seed else "")
    _register(name, split, fraction, seed)
    return name


def register_deepforest():
    """Register the DeepForest names listed in the module docstring; idempotent."""
    for split in ("train", "val", "unlabeled", "all"):
        _register(f"deepforest_{split}", split)
    for fraction in FRACTIONS:
        register_deepforest_subset(fraction)


register_deepforest()
