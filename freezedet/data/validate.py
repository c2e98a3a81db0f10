"""Dataset dicts checked before training: bad input becomes a clear message, not a crash deep in
a data-loader worker hours later, nor a silently wrong number.

Every dataset entry point goes through :func:`check_records`: :func:`checked_dataset_dicts` (a
drop-in for detectron2's ``get_detection_dataset_dicts`` in configs, for registered names),
:func:`~freezedet.data.coco_json.coco_json_dataset` and
:func:`~freezedet.data.lvis.lvis_json_dataset`, all with the same options:

- an image file that is missing or (with ``verify_images``) cannot be fully decoded (a truncated
  JPEG included), or whose decoded size (after its EXIF orientation, as detectron2 reads it)
  differs from the record's ``width`` / ``height``, is an error naming the file and the
  dataset, or, with ``skip_bad_images=True``, a record dropped and counted in one warning.
  Decoding is done once per file: results are cached by path, size and modification time
  (``<cache_root()>/image_checks``), so a second run only stats the files;
- an image that is not 8-bit (16-bit, 32-bit integer or float) is refused, naming the file and
  the ``high_bit_depth`` option, unless that option names a conversion rule
  (:mod:`freezedet.data.bit_depth`); converted 8-bit copies are written once to
  ``<cache_root()>/8bit`` and the records point at them (``source_file_name`` keeps the
  original), so every mapper, evaluator and tool reads the same converted pixels;
- boxes are clipped to the image; boxes that are degenerate (no area, NaN) or entirely outside
  it are dropped, with a count per dataset in the log;
- a dataset left with zero usable images is an error that says why.

Errors are :class:`~freezedet.utils.errors.UserError` s: tools print them without a traceback.

Evaluation reads ground truth from the annotation file, not from these records:
:func:`bad_ground_truth` lists the annotations that no detection could ever match, and
:class:`freezedet.evaluation.COCOEvaluator` refuses to compute AP with them.
"""

import hashlib
import json
import logging
import math
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple, Union

from PIL import Image

from detectron2.data import MetadataCatalog, get_detection_dataset_dicts
from detectron2.structures import BoxMode
from detectron2.utils.file_io import PathManager

from ..utils.errors import UserFileNotFoundError, UserKeyError, UserValueError
from ..utils.file_io import atomic_open, cache_root
from .bit_depth import HighBitDepthError, is_high_bit_depth, open_uint8, parse_rule
from .image_io import ImageReadError

__all__ = [
    "bad_ground_truth",
    "check_records",
    "checked_dataset_dicts",
    "forget_stale_coco_conversion",
]

logger = logging.getLogger(__name__)

_CACHE_VERSION = 2
_EXIF_ORIENTATION = 0x0112


def _local_file(path: str) -> Optional[str]:
    """The local file behind ``path`` (plain or ``freezedet://``), None for remote paths."""
    if "://" not in path:
        return path
    if path.startswith("freezedet://"):
        try:
            return PathManager.get_local_path(path)
        except FileNotFoundError:
            return os.path.join("/nonexistent", path)
    return None


def _oriented_size(im: Image.Image) -> Tuple[int, int]:
    """(width, height) of ``im`` after its EXIF orientation, as detectron2's ``read_image``
    returns it (orientations 5-8 transpose the image)."""
    try:
        orientation = im.getexif().get(_EXIF_ORIENTATION)
    except Exception:  # as detectron2: a broken EXIF block is ignored
        orientation = None
    return (im.height, im.width) if orientation in (5, 6, 7, 8) else (im.width, im.height)


def _decode(path: str) -> Tuple[Optional[str], Optional[str], Optional[Tuple[int, int]]]:
    """(problem, PIL mode, oriented (width, height)) of a local image file, decoding all of its
    pixels."""
    try:
        with Image.open(path) as im:
            mode, size = im.mode, _oriented_size(im)
            im.load()  # decodes everything: a truncated file fails here, not in a worker later
    except Exception as e:  # PIL raises many types for a corrupt file
        return f"cannot be decoded ({type(e).__name__}: {e})", None, None
    return None, mode, size


class _CheckCache:
    """``{path: [size, mtime_ns, mode, width, height]}`` of images that decoded (width, height
    after EXIF orientation), one json file per dataset."""

    def __init__(self, cache_dir: str, name: str):
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        self.path = os.path.join(cache_dir, "image_checks", f"{safe}-{digest}.json")
        self.entries, self.dirty = {}, False
        try:
            with open(self.path) as f:
                data = json.load(f)
            if data.get("version") == _CACHE_VERSION:
                self.entries = data["images"]
        except (OSError, ValueError, KeyError, AttributeError):
            pass  # no cache yet, or an unreadable one: check again

    def get(self, path: str, stat: os.stat_result) -> Optional[Tuple[str, Tuple[int, int]]]:
        """(mode, (width, height)) of an unchanged checked file, else None."""
        entry = self.entries.get(path)
        if entry and entry[0] == stat.st_size and entry[1] == stat.st_mtime_ns:
            return entry[2], (entry[3], entry[4])
        return None

    def add(self, path: str, stat: os.stat_result, mode: str, size: Tuple[int, int]):
        self.entries[path] = [stat.st_size, stat.st_mtime_ns, mode, *size]
        self.dirty = True

    def save(self):
        if not self.dirty:
            return
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        # concurrent writers: the last complete file wins
        with atomic_open(self.path, "w") as f:
            json.dump({"version": _CACHE_VERSION, "images": self.entries}, f)


def _inspect_images(paths: Sequence[str], verify: bool, cache: _CheckCache, counts: Counter):
    """{path: (problem or None, PIL mode or None, (width, height) or None)} for the unique
    ``paths``."""
    out, to_decode = {}, []
    for path in paths:
        local = _local_file(path)
        if local is None:  # a remote PathManager path: existence only
            out[path] = (None if PathManager.exists(path) else "does not exist", None, None)
            continue
        try:
            stat = os.stat(local)
        except OSError:
            out[path] = ("does not exist", None, None)
            continue
        if not os.path.isfile(local):
            out[path] = ("is not a file", None, None)
        elif not verify:
            out[path] = (None, None, None)
        else:
            cached = cache.get(os.path.abspath(local), stat)
            if cached is None:
                to_decode.append((path, local, stat))
            else:
                out[path] = (None, *cached)
                counts["cached"] += 1
    if to_decode:
        workers = min(8, os.cpu_count() or 1, len(to_decode))
        with ThreadPoolExecutor(max_workers=workers) as pool:  # PIL decodes without the GIL
            results = list(pool.map(lambda t: _decode(t[1]), to_decode))
        for (path, local, stat), (problem, mode, size) in zip(to_decode, results):
            out[path] = (problem, mode, size)
            counts["decoded"] += 1
            if problem is None:
                cache.add(os.path.abspath(local), stat, mode, size)
    return out


def _converted_copy(path: str, rule: str, cache_dir: str) -> str:
    """An 8-bit PNG of image ``path`` converted by ``rule``, written once (temp file + rename)."""
    local = _local_file(path)
    stat = os.stat(local)
    key = f"{os.path.abspath(local)}|{stat.st_size}|{stat.st_mtime_ns}|{rule}"
    target = os.path.join(cache_dir, "8bit", hashlib.sha1(key.encode()).hexdigest()[:20] + ".png")
    if not os.path.isfile(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with atomic_open(target, "wb") as f:
            open_uint8(local, rule).save(f, format="PNG")
    return target


def _box_problem(box: Sequence[float], w, h) -> Optional[str]:
    """Why an XYXY box can never be a usable object, or None."""
    if any(not math.isfinite(v) for v in box) or box[2] <= box[0] or box[3] <= box[1]:
        return "degenerate"
    if w is not None and h is not None:
        if min(box[2], w) - max(box[0], 0) < 1 or min(box[3], h) - max(box[1], 0) < 1:
            return "outside the image"
    return None


def _fix_boxes(record: dict, counts: Counter) -> dict:
    anns = record.get("annotations")
    if anns is None:
        return record
    w, h = record.get("width"), record.get("height")
    kept = []
    for ann in anns:
        box = BoxMode.convert(list(ann["bbox"]), ann["bbox_mode"], BoxMode.XYXY_ABS)
        problem = _box_problem(box, w, h)
        if problem == "degenerate":
            counts["degenerate boxes dropped"] += 1
            continue
        if problem is not None:
            counts["boxes outside the image dropped"] += 1
            continue
        if w is not None and h is not None:
            clipped = [min(max(box[0], 0), w), min(max(box[1], 0), h)]
            clipped += [min(max(box[2], 0), w), min(max(box[3], 0), h)]
            if clipped != box:
                counts["boxes clipped to the image"] += 1
                box = clipped
        kept.append(dict(ann, bbox=box, bbox_mode=BoxMode.XYXY_ABS))
    return dict(record, annotations=kept)


_SIZE_SKIPPED = "images whose size differs from their width / height skipped"


def _size_problem(record: dict, size: Optional[Tuple[int, int]]) -> Optional[str]:
    """Why the decoded (EXIF-oriented) ``size`` disagrees with the record's width / height."""
    w, h = record.get("width"), record.get("height")
    if size is None or w is None or h is None or tuple(size) == (w, h):
        return None
    hint = (
        " (the file's EXIF orientation rotates it; detectron2 reads it rotated)"
        if tuple(size) == (h, w)
        else ""
    )
    return (
        f"is {size[0]}x{size[1]} (width x height) as read{hint}, but its annotations say "
        f"{w}x{h}: boxes would be misplaced and detectron2's mapper fails on it. Correct width "
        "/ height in the annotation file (and the boxes, if they were drawn on another size)"
    )


def _bad_image_error(name: str, file_name: str, problem: str) -> Exception:
    message = (
        f"dataset {name!r}: image {file_name} {problem}. Fix or remove it, or skip such "
        "records with skip_bad_images=True (e.g. dataloader.train.dataset.skip_bad_images=True;"
        " on a test set their ground truth is left out of the evaluation, with a count)."
    )
    if problem in ("does not exist", "is not a file"):
        return UserFileNotFoundError(message)
    return ImageReadError(message)


def check_records(
    records: List[dict],
    *,
    name: str,
    skip_bad_images: bool = False,
    verify_images: bool = True,
    high_bit_depth: str = "error",
    cache_dir: Optional[str] = None,
) -> List[dict]:
    """Check and clean ``records`` of dataset ``name`` (see the module docstring).

    Args:
        records (list[dict]): detectron2 dataset dicts.
        name (str): the dataset's name, for messages and the check cache.
        skip_bad_images (bool): drop missing / undecodable images (and those whose size differs
            from the record's) with a counted warning instead of failing.
        verify_images (bool): decode every image once (cached); existence is always checked.
        high_bit_depth (str): what to do with images that are not 8-bit: "error", or a rule of
            :mod:`freezedet.data.bit_depth` ("percentile", "percentile:LOW,HIGH",
            "range:LOW,HIGH"). Needs ``verify_images`` to see the images.
        cache_dir (str or None): default :func:`~freezedet.utils.file_io.cache_root`.
    """
    parse_rule(high_bit_depth)  # a typo in the rule fails before any image is read
    cache_dir = cache_dir or cache_root()
    counts, stats = Counter(), Counter()
    cache = _CheckCache(cache_dir, name)
    paths = list(dict.fromkeys(r["file_name"] for r in records))
    inspected = _inspect_images(paths, verify_images, cache, stats)
    cache.save()
    out, skipped = [], []
    for r in records:
        problem, mode, size = inspected[r["file_name"]]
        problem = problem or _size_problem(r, size)
        if problem is not None:
            if not skip_bad_images:
                raise _bad_image_error(name, r["file_name"], problem)
            counts["unreadable images skipped" if size is None else _SIZE_SKIPPED] += 1
            skipped.append(os.path.basename(r["file_name"]))
            continue
        if mode is not None and is_high_bit_depth(mode):
            if high_bit_depth == "error":
                raise HighBitDepthError(
                    f"dataset {name!r}: image {r['file_name']} is not 8-bit (PIL mode {mode!r}); "
                    "detectron2 would clip its values above 255. Choose how to convert it with "
                    "the dataset option high_bit_depth: 'percentile' (per image), or "
                    "'range:LOW,HIGH' (fixed, e.g. 'range:0,4095' for 12-bit data), e.g. "
                    "dataloader.train.dataset.high_bit_depth=percentile and the same for "
                    "dataloader.test.dataset (freezedet/data/bit_depth.py)."
                )
            copy = _converted_copy(r["file_name"], high_bit_depth, cache_dir)
            r = dict(r, file_name=copy, source_file_name=r["file_name"])
            counts[f"images converted to 8-bit by rule {high_bit_depth!r}"] += 1
        out.append(_fix_boxes(r, counts))
    if verify_images and stats:
        logger.info(
            f"dataset {name!r}: {len(paths)} images decoded and checked "
            f"({stats['cached']} unchanged since an earlier check, {cache.path})"
        )
    if counts:
        logger.warning(
            f"dataset {name!r}: "
            + ", ".join(f"{n} {k}" for k, n in counts.items())
            + (f" (skipped: {', '.join(skipped[:5])}{' ...' if len(skipped) > 5 else ''})"
               if skipped else "")  # fmt: skip
        )
    if not out:
        raise UserValueError(
            f"dataset {name!r} has no usable image ({len(records)} records, "
            f"{dict(counts) or 'none readable'}); check its image root and annotations."
        )
    return out


def bad_ground_truth(coco: dict) -> List[Dict]:
    """Annotations of a COCO-format dict (``images``, ``annotations``) whose box no detection
    can ever match: degenerate (width or height <= 0, not finite) or entirely outside the image.
    Crowd regions are ignored (they are never matched). Returns ``[{"id", "image_id", "bbox",
    "problem"}]``."""
    sizes = {im["id"]: (im.get("width"), im.get("height")) for im in coco.get("images", [])}
    bad = []
    for a in coco.get("annotations", []):
        if a.get("iscrowd", 0):
            continue
        box = a.get("bbox")
        try:
            x, y, w, h = (float(v) for v in box)
        except (TypeError, ValueError):
            bad.append({"id": a.get("id"), "image_id": a.get("image_id"), "bbox": box,
                        "problem": "not 4 numbers"})  # fmt: skip
            continue
        problem = _box_problem([x, y, x + w, y + h], *sizes.get(a.get("image_id"), (None, None)))
        if problem is not None:
            bad.append({"id": a.get("id"), "image_id": a.get("image_id"), "bbox": box,
                        "problem": problem})  # fmt: skip
    return bad


def _missing_json_file(name: str):
    """Dataset ``name``'s registered ``json_file`` if it is a local path that does not exist."""
    json_file = MetadataCatalog.get(name).get("json_file", None)
    if json_file and "://" not in json_file and not os.path.isfile(json_file):
        return json_file
    return None


def forget_stale_coco_conversion(name: str) -> bool:
    """Drop ``json_file`` from dataset ``name``'s metadata when it is detectron2's COCO
    conversion cache and that file is gone; return whether it did.

    detectron2's ``COCOEvaluator`` converts a dataset registered without a COCO json (VOC XML,
    a Python function) to ``<output_dir>/<name>_coco_format.json`` and records that path in the
    process-wide ``MetadataCatalog``. Once that output directory is deleted, a later evaluator
    (or training run) in the same process would point at the missing file; forgetting the path
    makes the next ``COCOEvaluator`` convert again into its own output directory.
    """
    meta = MetadataCatalog.get(name)
    json_file = _missing_json_file(name)
    if json_file and os.path.basename(json_file) == f"{name}_coco_format.json":
        logger.info(f"dataset {name!r}: COCO conversion cache {json_file} is gone; forgetting it")
        delattr(meta, "json_file")
        return True
    return False


def _check_annotation_files(names: Sequence[str]):
    """detectron2's built-in datasets (coco_2017_train, lvis_v1_val, ...) are registered with
    paths below $DETECTRON2_DATASETS whether or not the files exist: say so before loading."""
    for name in names:
        if forget_stale_coco_conversion(name):
            continue  # records come from the dataset's own loader, not from the cache
        json_file = _missing_json_file(name)
        if json_file:
            root = os.getenv("DETECTRON2_DATASETS", "datasets")
            raise UserFileNotFoundError(
                f"dataset {name!r}: annotation file {json_file} does not exist. detectron2's "
                f"built-in datasets are read from $DETECTRON2_DATASETS (now {root!r}; see "
                "detectron2's docs, 'Use Builtin Datasets', for the expected layout): download "
                "the data there, set DETECTRON2_DATASETS, or register your copy under another "
                "name (freezedet.data.coco_json / freezedet.data.lvis)."
            )


def _load_dataset_dicts(names, **kwargs) -> List[dict]:
    """``get_detection_dataset_dicts`` (no filtering); detectron2's KeyError for an annotation
    whose category_id is not among the json's categories names the json and the fix."""
    try:
        return get_detection_dataset_dicts(names, filter_empty=False, **kwargs)
    except KeyError as e:
        if "Encountered category_id" not in str(e):
            raise
        files = [
            MetadataCatalog.get(n).get("json_file", n)
            for n in ([names] if isinstance(names, str) else names)
        ]
        raise UserKeyError(
            f"{' or '.join(map(str, files))}: {e.args[0]} Every annotation's category_id must "
            "be the id of an entry of 'categories': add the category or fix the annotation."
        ) from e


def checked_dataset_dicts(
    names: Union[str, Sequence[str]],
    filter_empty: bool = True,
    skip_bad_images: bool = False,
    verify_images: bool = True,
    high_bit_depth: str = "error",
    **kwargs,
):
    """``get_detection_dataset_dicts`` followed by :func:`check_records`.

    Args:
        names (str or list[str]): registered dataset names.
        filter_empty (bool): drop images without annotations (after box cleaning).
        skip_bad_images (bool): drop unreadable images with a counted warning instead of failing.
        verify_images (bool): decode-check every image once (cached by file size and
            modification time; existence is always checked); turn off for very large datasets
            (COCO) where the first check reads every file.
        high_bit_depth (str): images that are not 8-bit: "error" or a conversion rule
            (:mod:`freezedet.data.bit_depth`).
        kwargs: other arguments of ``get_detection_dataset_dicts``.
    """
    label = names if isinstance(names, str) else ",".join(names)
    _check_annotation_files([names] if isinstance(names, str) else names)
    records = _load_dataset_dicts(names, **kwargs)
    records = check_records(
        records,
        name=label,
        skip_bad_images=skip_bad_images,
        verify_images=verify_images,
        high_bit_depth=high_bit_depth,
    )
    if filter_empty:
        records = [r for r in records if r.get("annotations")]
        if not records:
            raise UserValueError(
                f"dataset {label!r} has no image with a usable box (every image's annotations "
                "are empty or were dropped, see the counts above); check its annotation file"
            )
    return records
