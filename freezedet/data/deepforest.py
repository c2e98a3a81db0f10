"""DeepForest tree crowns: real aerial images with Pascal VOC boxes, shipped in PyPI ``deepforest``.

``deepforest/data/`` (install the package with ``--no-deps``; nothing of it is imported) holds
4 annotated RGB images, 951 boxes:

=============================================  ===========  =====  =======================
image                                          size         boxes  split
=============================================  ===========  =====  =======================
2019_YELL_2_528000_4978000_image_crop2.png     2299 x 2472    574  by region (see below)
2019_YELL_2_541000_4977000_image_crop.png      1249 x 1035    279  by region
OSBS_029.png                                   400 x 400       61  train
SOAP_061.png                                   400 x 400       37  val
SOAP_031.png (no annotations)                  400 x 400        0  unlabeled only
=============================================  ===========  =====  =======================

All classes ("Tree", and "Alive"/"Dead" on SOAP_061) map to one class, ``tree``: the
alive/dead split exists on one 400 px image only, too few boxes to learn or evaluate it.

**Split by source region.** For each large image the right-most strip (25 % of the width, at
least one tile wide) is the validation region, the rest the training region. Each region is
tiled on its own (``tile_size`` px, stride = tile size, the last row/column aligned to the
region's edge), so no validation tile overlaps a training tile. Boxes are clipped to their tile;
a clipped box is kept if it keeps >= ``min_visible`` of its area and is >= ``min_size`` px on
both sides. At most ``max_empty_tiles`` tree-less tiles are kept per region. The two small
images are one tile each: OSBS_029 for training, SOAP_061 (another site) for validation.

Registered names: ``deepforest_train``, ``deepforest_val``, ``deepforest_train_{10,25,50}pct``
(deterministic tile subsets, for low-data points), ``deepforest_unlabeled`` (training tiles +
SOAP_031, annotations removed: for self-supervised pre-training without touching validation
images) and ``deepforest_all`` (every tile, annotations removed). Tiles are written once as PNG
under ``data_root()/deepforest_tiles/<parameter hash>/`` (atomically), the first time a dataset
is requested.
"""
import hashlib
import importlib.metadata
import json
import logging
import os
import random
import tempfile
import xml.etree.ElementTree as ET
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from .paths import data_root

__all__ = [
    "deepforest_data_dir",
    "parse_voc_xml",
    "tile_dataset",
    "load_deepforest",
    "register_deepforest",
    "subset",
]

logger = logging.getLogger(__name__)

LARGE_IMAGES = (
    "2019_YELL_2_528000_4978000_image_crop2",
    "2019_YELL_2_541000_4977000_image_crop",
)
SMALL_IMAGES = {"OSBS_029": "train", "SOAP_061": "val"}
UNLABELED_IMAGES = ("SOAP_031",)
SPLITS = ("train", "val")
FRACTIONS = (10, 25, 50)


def deepforest_data_dir() -> str:
    """``deepforest/data`` of the installed package, located without importing it."""
    try:
        dist = importlib.metadata.distribution("deepforest")
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            "The PyPI package 'deepforest' is not installed; it ships the DeepForest images. "
            "Install it with `pip install --no-deps deepforest==2.1.0` (or run `make install`)."
        ) from None
    path = str(dist.locate_file("deepforest/data"))
    if not os.path.isdir(path):
        raise FileNotFoundError(f"deepforest is installed but {path} does not exist")
    return path


def parse_voc_xml(path: str) -> Tuple[Tuple[int, int], List[List[float]]]:
    """((width, height), [[x0, y0, x1, y1], ...]) from a Pascal VOC file; VOC pixel indices are
    inclusive, so x1 + 1 / y1 + 1 give detectron2's exclusive XYXY_ABS extent."""
    try:
        root = ET.parse(path).getroot()
        size = root.find("size")
        wh = (int(size.find("width").text), int(size.find("height").text))
        boxes = []
        for obj in root.iter("object"):
            bb = obj.find("bndbox")
            x0, y0, x1, y1 = (float(bb.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax"))
            boxes.append([x0, y0, x1 + 1, y1 + 1])
    except (ET.ParseError, AttributeError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a valid Pascal VOC annotation file ({e})") from e
    return wh, boxes


def _positions(start: int, end: int, tile: int) -> List[int]:
    """Tile origins covering [start, end): stride = tile, last one aligned to ``end``."""
    assert end - start >= tile, f"region [{start}, {end}) is smaller than one tile ({tile})"
    pos = list(range(start, end - tile + 1, tile))
    if pos[-1] + tile < end:
        pos.append(end - tile)
    return pos


def _regions(name: str, width: int, height: int, tile: int, val_fraction: float):
    """{split: (x0, x1)} column ranges of an image, each a full-height strip."""
    if name in SMALL_IMAGES:
        return {SMALL_IMAGES[name]: (0, width)}
    val_w = max(tile, int(round(width * val_fraction)))
    assert width - val_w >= tile, f"{name}: {width} px too narrow for a train and a val region"
    return {"train": (0, width - val_w), "val": (width - val_w, width)}


def _clip(boxes: np.ndarray, x0, y0, tile, min_visible, min_size) -> np.ndarray:
    if len(boxes) == 0:
        return boxes.reshape(0, 4)
    clipped = boxes.copy()
    clipped[:, [0, 2]] = np.clip(clipped[:, [0, 2]], x0, x0 + tile) - x0
    clipped[:, [1, 3]] = np.clip(clipped[:, [1, 3]], y0, y0 + tile) - y0
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    w, h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    keep = (w >= min_size) & (h >= min_size) & (w * h >= min_visible * area)
    return clipped[keep]


def _save_png_atomic(array: np.ndarray, path: str):
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=os.path.dirname(path))
    os.close(fd)
    try:
        Image.fromarray(array).save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def tile_dataset(
    *, tile_size: int = 400, val_fraction: float = 0.25, min_visible: float = 0.5,
    min_size: float = 4.0, max_empty_tiles: int = 2, cache_dir: str = None,
) -> Dict[str, List[dict]]:
    """Tile the annotated images (see module docstring); returns ``{split: records}`` with
    split in "train", "val", "unlabeled". Tiles are cached as PNG files."""
    params = dict(tile_size=tile_size, val_fraction=val_fraction, min_visible=min_visible,
                  min_size=min_size, max_empty_tiles=max_empty_tiles, version=1)
    digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
    cache_dir = cache_dir or os.path.join(data_root(), "deepforest_tiles", digest)
    os.makedirs(cache_dir, exist_ok=True)
    src = deepforest_data_dir()
    out = {"train": [], "val": [], "unlabeled": []}
    for name in LARGE_IMAGES + tuple(SMALL_IMAGES) + UNLABELED_IMAGES:
        image_path = os.path.join(src, name + ".png")
        if not os.path.isfile(image_path):
            raise FileNotFoundError(f"DeepForest image {image_path} is missing; reinstall deepforest")
        if name in UNLABELED_IMAGES:
            with Image.open(image_path) as im:
                (width, height), boxes = im.size, []
            regions = {"unlabeled": (0, width)}
        else:
            (width, height), boxes = parse_voc_xml(os.path.join(src, name + ".xml"))
            regions = _regions(name, width, height, tile_size, val_fraction)
        image = None
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        for split, (rx0, rx1) in regions.items():
            n_empty = 0
            for y in _positions(0, height, tile_size):
                for x in _positions(rx0, rx1, tile_size):
                    tile_boxes = _clip(boxes, x, y, tile_size, min_visible, min_size)
                    if len(tile_boxes) == 0 and split != "unlabeled":
                        n_empty += 1
                        if n_empty > max_empty_tiles:
                            continue
                    path = os.path.join(cache_dir, f"{name}_x{x}_y{y}.png")
                    if not os.path.isfile(path):
                        if image is None:
                            image = np.asarray(Image.open(image_path).convert("RGB"))
                            assert image.shape[:2] == (height, width), (
                                f"{image_path}: image is {image.shape[1]}x{image.shape[0]}, "
                                f"its annotation says {width}x{height}"
                            )
                        _save_png_atomic(image[y : y + tile_size, x : x + tile_size], path)
                    out[split].append(_record(path, name, x, y, tile_size, tile_boxes))
    return out


def _record(path, source, x, y, tile, boxes) -> dict:
    # stable across runs and machines: derived from the source image and the tile origin
    image_id = int(hashlib.sha1(f"{source}:{x}:{y}:{tile}".encode()).hexdigest()[:8], 16)
    return {
        "file_name": path,
        "image_id": image_id,
        "height": tile,
        "width": tile,
        "source_image": source,
        "tile_origin": (x, y),
        "annotations": [
            {"bbox": [float(v) for v in b], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0,
             "iscrowd": 0}
            for b in boxes
        ],
    }


def subset(records: List[dict], fraction: float, seed: int = 0) -> List[dict]:
    """A deterministic random subset of ``fraction`` of the records (at least one)."""
    assert 0 < fraction <= 1, f"fraction={fraction} must be in (0, 1]"
    order = sorted(range(len(records)), key=lambda i: records[i]["image_id"])
    random.Random(seed).shuffle(order)
    n = max(1, int(round(fraction * len(records))))
    return [records[i] for i in sorted(order[:n])]


def _strip_annotations(records):
    return [{k: v for k, v in r.items() if k != "annotations"} for r in records]


_CACHE = {}


def load_deepforest(split: str) -> List[dict]:
    """Records of a registered split name's data (tiling on first use)."""
    if "tiles" not in _CACHE:
        _CACHE["tiles"] = tile_dataset()
    tiles = _CACHE["tiles"]
    if split in SPLITS:
        return [dict(r) for r in tiles[split]]
    if split.startswith("train_") and split.endswith("pct"):
        return [dict(r) for r in subset(tiles["train"], int(split[6:-3]) / 100.0)]
    if split == "unlabeled":
        return _strip_annotations(tiles["train"] + tiles["unlabeled"])
    if split == "all":
        return _strip_annotations(tiles["train"] + tiles["val"] + tiles["unlabeled"])
    raise KeyError(f"unknown DeepForest split {split!r}")


def register_deepforest():
    """Register the DeepForest datasets (cheap: tiles are made when first requested)."""
    names = list(SPLITS) + [f"train_{p}pct" for p in FRACTIONS] + ["unlabeled", "all"]
    for split in names:
        name = f"deepforest_{split}"
        if name in DatasetCatalog.list():
            continue
        DatasetCatalog.register(name, lambda s=split: load_deepforest(s))
        MetadataCatalog.get(name).set(
            thing_classes=["tree"], evaluator_type="coco", source="PyPI deepforest, data/"
        )


register_deepforest()
