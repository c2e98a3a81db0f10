"""Selective-search object proposals for unlabeled images (AlignDet-style box-domain pre-training).

AlignDet (Li et al., ICCV 2023) pre-trains the detection heads on unlabeled images, using
unsupervised proposals as pseudo-boxes. This module produces them:

- :func:`selective_search`: OpenCV-contrib selective search, boxes in the order OpenCV ranks
  them (``rand() * level`` with the smallest hierarchy levels first), optionally run on a
  downscaled copy of large images (``max_side``) with the boxes scaled back.
- :func:`filter_proposals`: clip, drop tiny and elongated boxes, NMS with rank-based scores,
  keep the top k. Rank order is kept throughout.
- :class:`ProposalCache`: a json file of per-image XYXY_ABS boxes keyed by ``str(image_id)``,
  with a header recording the generation parameters; written atomically every
  ``save_interval_s`` so an interrupted run resumes where it stopped
  (:func:`generate_proposal_cache` skips images already in the cache).
- :func:`load_proposals_into_dicts`: attaches ``proposal_boxes`` /
  ``proposal_objectness_logits`` / ``proposal_bbox_mode`` to dataset dicts, the keys
  :func:`detectron2.data.detection_utils.transform_proposals` reads.

Cache layout::

    {"header": {"format": "freezedet-proposals", "version": 1, "dataset": "deepforest_all",
                "num_images": 54, "bbox_mode": "XYXY_ABS", "opencv_version": "4.11.0",
                "params": {"mode": "fast", "max_side": 800, "min_size": 8, ...}},
     "images": {"<image_id>": {"height": 400, "width": 400, "boxes": [[x0, y0, x1, y1], ...]}}}

Boxes are stored best-ranked first, so objectness logits are not stored: they are rebuilt from
the rank (:func:`rank_logits`), identical for the k-th proposal of every image.

Selective search ranks with C ``rand()``; :func:`selective_search` seeds it before every image
so an image's proposals do not depend on which worker computed it or what it computed before
(a resumed run gives the same cache as an uninterrupted one).
"""

import ctypes
import functools
import json
import logging
import multiprocessing
import os
import time
import warnings
from typing import Dict, Iterable, List, Optional, Tuple

import cv2
import numpy as np
import torch
from torchvision.ops import nms

from detectron2.data.detection_utils import read_image
from detectron2.structures import BoxMode
from detectron2.utils.file_io import PathManager

from ..utils.file_io import atomic_open

__all__ = [
    "MODES",
    "selective_search",
    "rank_logits",
    "filter_proposals",
    "generate_proposals",
    "ProposalCache",
    "read_proposal_cache",
    "generate_proposal_cache",
    "load_proposals_into_dicts",
]

logger = logging.getLogger(__name__)

MODES = ("fast", "quality", "single")
CACHE_FORMAT = "freezedet-proposals"
CACHE_VERSION = 1
# how many offending image ids an error message lists before summarizing
_MAX_IDS_SHOWN = 10


def _libc():
    # the process's own C library, which OpenCV's rand() comes from on Linux and macOS
    try:
        return ctypes.CDLL(None)
    except (OSError, TypeError):  # Windows: no handle for "the process"; ranking stays unseeded
        return None


_LIBC = _libc()


def _seed_c_rand(seed: int):
    # OpenCV's selective search ranks regions with the C library's global rand(); without a
    # per-image seed the result depends on how many images this process has seen before.
    # glibc's srand(0) is srand(1): shift so that every seed gives its own sequence
    if _LIBC is not None and hasattr(_LIBC, "srand"):
        _LIBC.srand(ctypes.c_uint(seed + 1))


def selective_search(
    image_bgr: np.ndarray, *, mode: str = "fast", max_side: Optional[int] = None, seed: int = 0
) -> np.ndarray:
    """Run OpenCV-contrib selective search on one image.

    Args:
        image_bgr: (H, W, 3) uint8 image in BGR channel order (as ``cv2.imread`` returns it).
        mode: "fast" (``switchToSelectiveSearchFast``: HSV + Lab, 3 graph-segmentation scales,
            2 strategies), "quality" (5 colour spaces, 5 scales, 4 strategies; several times
            slower) or "single" (one segmentation and strategy; fastest, fewest boxes).
        max_side: if the longer image side exceeds it, search a copy downscaled to this size and
            scale the boxes back. Selective search cost grows faster than the pixel count, so
            this bounds the time spent on large images, at the price of missing regions smaller
            than a few downscaled pixels. None: never downscale.
        seed: seed of the C ``rand()`` OpenCV ranks regions with (see module docstring).

    Returns:
        float32 array (N, 4) of XYXY_ABS boxes in the original image's pixels, in OpenCV's
        rank order (best first), duplicates removed by OpenCV.
    """
    assert mode in MODES, f"selective search mode must be one of {MODES}, got {mode!r}"
    assert (
        image_bgr.ndim == 3 and image_bgr.shape[2] == 3 and image_bgr.dtype == np.uint8
    ), f"expected an (H, W, 3) uint8 BGR image, got shape {image_bgr.shape} {image_bgr.dtype}"
    assert max_side is None or max_side > 0, f"max_side must be positive or None, got {max_side}"
    height, width = image_bgr.shape[:2]
    image = image_bgr
    if max_side is not None and max(height, width) > max_side:
        scale = max_side / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA)
    ss = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    ss.setBaseImage(np.ascontiguousarray(image))
    if mode == "fast":
        ss.switchToSelectiveSearchFast()
    elif mode == "quality":
        ss.switchToSelectiveSearchQuality()
    else:
        ss.switchToSingleStrategy()
    _seed_c_rand(seed)
    rects = ss.process()
    boxes = np.asarray(rects, dtype=np.float32).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]  # (x, y, w, h) -> (x0, y0, x1, y1)
    if image is not image_bgr:
        boxes[:, [0, 2]] *= width / image.shape[1]
        boxes[:, [1, 3]] *= height / image.shape[0]
    return boxes


def rank_logits(num: int) -> np.ndarray:
    """Scores for ``num`` ranked proposals: ``-rank`` (0, -1, -2, ...), float32.

    Selective search has no objectness score, only an order; these scores reproduce the order
    (for NMS and for detectron2's top-k selection) and give the k-th proposal of every image
    the same value. They are not calibrated probabilities.
    """
    return -np.arange(num, dtype=np.float32)


def filter_proposals(
    boxes: np.ndarray,
    *,
    image_size: Tuple[int, int],
    min_size: float,
    max_aspect_ratio: float = 3.0,
    nms_thresh: float,
    topk: int,
) -> np.ndarray:
    """Clean up ranked proposals, keeping their order.

    Args:
        boxes: (N, 4) XYXY_ABS boxes, best-ranked first.
        image_size: (height, width); boxes are clipped to it.
        min_size: drop boxes whose width or height (after clipping) is below this, in pixels.
        max_aspect_ratio: drop boxes with max(w / h, h / w) above this (>= 1).
        nms_thresh: IoU above which a box is suppressed by a better-ranked one (0, 1];
            1 disables NMS.
        topk: keep at most this many boxes (the best-ranked survivors).

    Returns:
        float32 array (M, 4), M <= topk, still best-ranked first.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    height, width = image_size
    assert height > 0 and width > 0, f"image_size must be (height, width) > 0, got {image_size}"
    assert min_size >= 0, f"min_size must be >= 0, got {min_size}"
    assert max_aspect_ratio >= 1, f"max_aspect_ratio must be >= 1, got {max_aspect_ratio}"
    assert 0 < nms_thresh <= 1, f"nms_thresh must be in (0, 1], got {nms_thresh}"
    assert topk > 0, f"topk must be positive, got {topk}"
    boxes = boxes.copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    keep = (w >= max(min_size, 1e-3)) & (h >= max(min_size, 1e-3))
    keep &= np.maximum(w, h) <= max_aspect_ratio * np.minimum(w, h)
    boxes = boxes[keep]
    if nms_thresh < 1 and len(boxes) > 1:
        t = torch.from_numpy(boxes)
        # nms returns survivors by decreasing score, i.e. in rank order
        order = nms(t, torch.from_numpy(rank_logits(len(boxes))), nms_thresh).numpy()
        boxes = boxes[order]
    return boxes[:topk]


def generate_proposals(
    image_bgr: np.ndarray,
    *,
    mode: str,
    max_side: Optional[int],
    min_size: float,
    max_aspect_ratio: float,
    nms_thresh: float,
    topk: int,
    seed: int,
) -> np.ndarray:
    """:func:`selective_search` followed by :func:`filter_proposals` (arguments as there)."""
    boxes = selective_search(image_bgr, mode=mode, max_side=max_side, seed=seed)
    return filter_proposals(
        boxes,
        image_size=image_bgr.shape[:2],
        min_size=min_size,
        max_aspect_ratio=max_aspect_ratio,
        nms_thresh=nms_thresh,
        topk=topk,
    )


def _shorten(ids: List[str]) -> str:
    shown = ", ".join(ids[:_MAX_IDS_SHOWN])
    more = len(ids) - _MAX_IDS_SHOWN
    return shown + (f", ... ({more} more)" if more > 0 else "")


def read_proposal_cache(path: str) -> Tuple[dict, Dict[str, dict]]:
    """Read a cache written by :class:`ProposalCache`.

    Returns:
        (header, images): ``images`` maps ``str(image_id)`` to
        ``{"height", "width", "boxes"}`` (boxes as nested lists).
    """
    if not PathManager.exists(path):
        raise FileNotFoundError(
            f"proposal cache {path} does not exist; create it with "
            f"`python tools/selective_search.py --dataset NAME --output {path}`"
        )
    with PathManager.open(path, "r") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"proposal cache {path} is not valid json ({e}); delete it") from e
    header = data.get("header") if isinstance(data, dict) else None
    if not isinstance(header, dict) or header.get("format") != CACHE_FORMAT:
        raise ValueError(
            f"{path} is not a freezedet proposal cache (no header with format={CACHE_FORMAT!r})"
        )
    if header.get("version") != CACHE_VERSION:
        raise ValueError(
            f"proposal cache {path} has version {header.get('version')}, this code reads "
            f"version {CACHE_VERSION}; regenerate it with tools/selective_search.py"
        )
    return header, data["images"]


class ProposalCache:
    """Per-image proposals on disk, appended to image by image, saved atomically.

    Opening an existing file resumes it: its entries are kept and :meth:`__contains__` reports
    them, so callers skip those images. Resuming with other generation parameters or another
    dataset is an error, since one file would then mix two kinds of proposals.
    """

    def __init__(
        self, path: str, *, params: dict, dataset: str, num_images: int, save_interval_s=30.0
    ):
        """
        Args:
            path: json file (local path; created with its parent folder if missing).
            params: generation parameters, recorded in the header and compared on resume
                (json-serializable values).
            dataset: name of the dataset (or image folder) the proposals are for.
            num_images: number of images in that dataset, recorded in the header.
            save_interval_s: :meth:`maybe_save` rewrites the file when at least this many
                seconds passed since the last save (0: on every call).
        """
        self.path = path
        self.save_interval_s = save_interval_s
        self.header = {
            "format": CACHE_FORMAT,
            "version": CACHE_VERSION,
            "dataset": dataset,
            "num_images": num_images,
            "bbox_mode": BoxMode.XYXY_ABS.name,
            "opencv_version": cv2.__version__,
            "params": dict(params),
        }
        self.images: Dict[str, dict] = {}
        if os.path.exists(path):
            old_header, self.images = read_proposal_cache(path)
            # a json round trip so tuples / ints compare like the stored lists / floats
            params_json = json.loads(json.dumps(self.header["params"]))
            diff = {
                k: (old_header["params"].get(k), params_json.get(k))
                for k in set(old_header["params"]) | set(params_json)
                if old_header["params"].get(k) != params_json.get(k)
            }
            if old_header.get("dataset") != dataset:
                diff["dataset"] = (old_header.get("dataset"), dataset)
            if diff:
                raise ValueError(
                    f"cannot resume proposal cache {path}: it was made with other settings "
                    f"(key: (in file, requested)): {diff}. Use another output file, or delete "
                    "this one to start over."
                )
            logger.info(f"Resuming {path}: {len(self.images)} images already done")
        self._last_save = time.monotonic()
        self._dirty = False

    def __contains__(self, image_id) -> bool:
        return str(image_id) in self.images

    def __len__(self) -> int:
        return len(self.images)

    def add(self, image_id, *, boxes: np.ndarray, height: int, width: int):
        """Record the proposals of one image (XYXY_ABS, best-ranked first)."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        self.images[str(image_id)] = {
            "height": int(height),
            "width": int(width),
            "boxes": np.round(boxes, 1).tolist(),
        }
        self._dirty = True

    def maybe_save(self):
        """Save if there is something new and ``save_interval_s`` has passed."""
        if self._dirty and time.monotonic() - self._last_save >= self.save_interval_s:
            self.save()

    def save(self):
        """Write the whole file atomically (:func:`~freezedet.utils.file_io.atomic_open`), so
        a reader or a killed run never sees a partial file."""
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        with atomic_open(self.path, "w") as f:
            json.dump({"header": self.header, "images": self.images}, f, separators=(",", ":"))
        self._last_save = time.monotonic()
        self._dirty = False


def _init_worker(cv2_threads: int):
    # workers split the cores between them; letting each use all of them oversubscribes
    cv2.setNumThreads(cv2_threads)
    torch.set_num_threads(1)


def _propose_file(task: Tuple[str, str], params: dict) -> Tuple[str, int, int, np.ndarray]:
    image_id, file_name = task
    try:
        image = read_image(file_name, format="BGR")
    except Exception as e:
        raise RuntimeError(f"cannot read image {file_name} (image_id {image_id}): {e}") from e
    boxes = generate_proposals(image, **params)
    return image_id, image.shape[0], image.shape[1], boxes


def generate_proposal_cache(
    images: Iterable[Tuple[object, str]],
    output: str,
    *,
    params: dict,
    dataset: str,
    workers: int = 1,
    chunksize: Optional[int] = None,
    save_interval_s: float = 30.0,
    progress: bool = True,
) -> dict:
    """Compute proposals for every image not yet in the cache at ``output``.

    Args:
        images: (image_id, file_name) pairs; file names may use any PathManager prefix.
        output: cache json (resumed if it exists; see :class:`ProposalCache`).
        params: keyword arguments of :func:`generate_proposals`.
        dataset: dataset name recorded in the cache header.
        workers: processes; 1 computes in this process.
        chunksize: images per task sent to a worker; None: a few chunks per worker, at most 8
            images each (small chunks keep the progress bar and the periodic saves moving).
        save_interval_s: see :class:`ProposalCache`.
        progress: show a tqdm progress bar.

    Returns:
        dict with ``num_images`` (in ``images``), ``num_skipped`` (already cached),
        ``num_computed`` and ``seconds`` (time spent computing, pool start included).
    """
    images = [(str(i), f) for i, f in images]
    ids = [i for i, _ in images]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"image ids must be unique; repeated: {_shorten(dup)}")
    assert workers >= 1, f"workers must be >= 1, got {workers}"
    cache = ProposalCache(
        output,
        params=params,
        dataset=dataset,
        num_images=len(images),
        save_interval_s=save_interval_s,
    )
    todo = [t for t in images if t[0] not in cache]
    stats = {"num_images": len(images), "num_skipped": len(images) - len(todo)}
    start = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="img", desc="selective search")
    pool = None
    try:
        work = functools.partial(_propose_file, params=params)
        if workers == 1 or len(todo) <= 1:
            results = map(work, todo)
        else:
            if chunksize is None:
                chunksize = max(1, min(8, len(todo) // (4 * workers)))
            pool = multiprocessing.Pool(
                workers,
                initializer=_init_worker,
                initargs=(max(1, (os.cpu_count() or 1) // workers),),
            )
            results = pool.imap_unordered(work, todo, chunksize=chunksize)
        for image_id, height, width, boxes in results:
            cache.add(image_id, boxes=boxes, height=height, width=width)
            cache.maybe_save()
            if bar is not None:
                bar.update(1)
    finally:
        # keep whatever was computed, also when interrupted: the next run resumes from it
        if pool is not None:
            pool.terminate()
            pool.join()
        if bar is not None:
            bar.close()
        cache.save()
    stats["num_computed"] = len(todo)
    stats["seconds"] = time.perf_counter() - start
    return stats


def load_proposals_into_dicts(
    dataset_dicts: List[dict], cache_path: str, *, params: Optional[dict] = None
) -> List[dict]:
    """Attach cached proposals to dataset dicts (in place) for detectron2's
    ``transform_proposals``: ``proposal_boxes`` (float32 (N, 4), best-ranked first),
    ``proposal_objectness_logits`` (:func:`rank_logits`) and ``proposal_bbox_mode``.

    Args:
        dataset_dicts: detectron2 dataset dicts, each with ``image_id`` (and optionally
            ``height`` / ``width``, checked against the size recorded in the cache).
        cache_path: a :class:`ProposalCache` file (any PathManager path). It may hold more
            images than ``dataset_dicts`` (e.g. a cache of a superset of the dataset).
        params: the generation parameters the caller expects; a warning lists those the
            cache was made with differently. None: not checked.

    Returns:
        ``dataset_dicts``.

    Raises:
        ValueError: if some images have no entry in the cache, or a different size there.
    """
    header, images = read_proposal_cache(cache_path)
    if params is not None:
        expected = json.loads(json.dumps(dict(params)))
        diff = {
            k: (header["params"].get(k), v)
            for k, v in expected.items()
            if header["params"].get(k) != v
        }
        if diff:
            warnings.warn(
                f"proposal cache {cache_path} was generated with other parameters than "
                f"requested (key: (in cache, requested)): {diff}. Regenerate it into a new "
                "file with tools/selective_search.py if this matters.",
                stacklevel=2,
            )
    missing, wrong_size = [], []
    for record in dataset_dicts:
        key = str(record["image_id"])
        entry = images.get(key)
        if entry is None:
            missing.append(key)
            continue
        size = (record.get("height"), record.get("width"))
        if size != (None, None) and size != (entry["height"], entry["width"]):
            wrong_size.append(
                f"{key} (cache {entry['height']}x{entry['width']}, dataset {size[0]}x{size[1]})"
            )
    if missing:
        raise ValueError(
            f"proposal cache {cache_path} (dataset {header.get('dataset')!r}, "
            f"{len(images)} images) has no proposals for {len(missing)} of the "
            f"{len(dataset_dicts)} dataset images, image ids: {_shorten(missing)}. Run "
            f"`python tools/selective_search.py --dataset NAME --output {cache_path}` for this "
            "dataset (it resumes: only missing images are computed)."
        )
    if wrong_size:
        raise ValueError(
            f"proposal cache {cache_path} records another image size (HxW) than the dataset "
            f"for {len(wrong_size)} images: {_shorten(wrong_size)}. The images changed since "
            "the cache was made; delete it and regenerate it."
        )
    bbox_mode = BoxMode[header["bbox_mode"]]
    for record in dataset_dicts:
        boxes = np.asarray(images[str(record["image_id"])]["boxes"], dtype=np.float32)
        record["proposal_boxes"] = boxes.reshape(-1, 4)
        record["proposal_objectness_logits"] = rank_logits(len(record["proposal_boxes"]))
        record["proposal_bbox_mode"] = bbox_mode
    return dataset_dicts
