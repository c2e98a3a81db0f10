"""The logic behind ``tools/predict.py``: predict a trained model on image files, write one
picture per image and one COCO results json.

    python tools/predict.py --run output/DeepForest/faster_rcnn_fpn/effl0_frozen \
        --input images/ --output preds/

``--run`` is a training run's output directory: its ``config.yaml`` (the config as trained) and
its weights; a config file with ``--weights`` works too. The config's datasets are not loaded:
the class names come from the dataset's metadata or json categories
(:func:`~freezedet.inference.predictor.config_metadata`).

An image that cannot be read (or has no conversion rule, e.g. 16-bit) is reported with its file
name and skipped; the other images are still predicted, and the exit status is then 1.
"""

import argparse
import contextlib
import glob
import json
import logging
import os
import sys
from typing import List, Sequence, Tuple

import numpy as np
from PIL import Image
from tqdm import tqdm

from detectron2.data.detection_utils import convert_image_to_rgb
from detectron2.utils.logger import setup_logger

from ..data.image_io import ImageReadError
from ..engine.defaults import filter_known_warnings
from ..utils.errors import UserFileNotFoundError
from ..utils.file_io import atomic_open
from .cli import predict_argument_parser
from .predictor import Predictor
from .results import draw_instances, instances_to_results

__all__ = ["argument_parser", "collect_images", "predict_images", "main"]

logger = logging.getLogger(__name__)


def argument_parser() -> argparse.ArgumentParser:
    """The arguments of ``tools/predict.py`` (:mod:`freezedet.inference.cli`)."""
    return predict_argument_parser()


def _image_extensions() -> set:
    return {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def collect_images(inputs: Sequence[str]) -> Tuple[List[str], List[str]]:
    """(image files, skipped files) of ``inputs``: files are taken as given; folders and glob
    patterns contribute their files with an image extension, the others are skipped.

    Raises:
        FileNotFoundError: an input that is neither a file, a folder nor a matching pattern.
    """
    extensions = _image_extensions()
    files, skipped = [], []
    for item in inputs:
        if os.path.isfile(item):
            files.append(item)
            continue
        if os.path.isdir(item):
            found = [os.path.join(item, f) for f in sorted(os.listdir(item))]
            found = [f for f in found if os.path.isfile(f) and not os.path.basename(f)[0] == "."]
        else:
            found = [f for f in sorted(glob.glob(item, recursive=True)) if os.path.isfile(f)]
            if not found:
                raise UserFileNotFoundError(
                    f"--input {item}: no such file, folder or matching file"
                )
        for f in found:
            is_image = os.path.splitext(f)[1].lower() in extensions
            (files if is_image else skipped).append(f)
    return files, skipped


def _output_names(files: Sequence[str]) -> List[str]:
    """``<stem>.png`` per file, made unique (``<stem>_1.png`` ...) when stems repeat."""
    used, names = set(), []
    for f in files:
        stem = os.path.splitext(os.path.basename(f))[0]
        name, k = f"{stem}.png", 0
        while name in used:
            k += 1
            name = f"{stem}_{k}.png"
        used.add(name)
        names.append(name)
    return names


class _JsonListWriter:
    """Writes a json list item by item (nothing accumulates in memory), atomically renamed
    into place on close."""

    def __init__(self, path: str):
        self.path = path
        self._file = contextlib.ExitStack()
        self._f = self._file.enter_context(atomic_open(path, "w"))
        self._f.write("[")
        self.count = 0

    def extend(self, items):
        for item in items:
            self._f.write(("," if self.count else "") + "\n" + json.dumps(item))
            self.count += 1

    def close(self):
        self._f.write("\n]\n")
        self._file.close()  # renamed into place, also after an error: the results so far


def predict_images(
    predictor: Predictor, files: Sequence[str], output_dir: str, *, pictures: bool = True
) -> dict:
    """Predict ``files``, writing ``<output_dir>/<stem>.png`` (if ``pictures``) and
    ``<output_dir>/results.json`` (image ids 1, 2, ... in the order of ``files``, each result
    with its ``file_name``). Unreadable images are reported and skipped.

    Returns:
        dict: ``results_json``, ``images`` (predicted), ``detections``, ``failed``
        (list of (file, message)).
    """
    os.makedirs(output_dir, exist_ok=True)
    names = dict(zip(files, _output_names(files)))
    ids = {f: i + 1 for i, f in enumerate(files)}
    failed, pending = [], []
    bar = tqdm(total=len(files), unit="img", desc="predict", dynamic_ncols=True, file=sys.stderr)

    def readable():
        for path in files:
            try:
                image = predictor.read(path)
            except ImageReadError as e:
                failed.append((path, str(e)))
                tqdm.write(f"skipped {e}", file=sys.stderr)
                bar.update(1)
                continue
            pending.append((path, image))
            yield image

    writer = _JsonListWriter(os.path.join(output_dir, "results.json"))
    try:
        for instances in predictor.iter_predictions(readable()):
            path, image = pending.pop(0)
            writer.extend(
                instances_to_results(
                    instances, image_id=ids[path], file_name=path, metadata=predictor.metadata
                )
            )
            if pictures:
                rgb = convert_image_to_rgb(image, predictor.input_format)
                drawn = draw_instances(np.ascontiguousarray(rgb), instances, predictor.metadata)
                Image.fromarray(drawn).save(os.path.join(output_dir, names[path]))
            bar.update(1)
    finally:
        bar.close()
        writer.close()
    return {
        "results_json": writer.path,
        "images": len(files) - len(failed),
        "detections": writer.count,
        "failed": failed,
    }


def main(argv=None) -> int:
    """``tools/predict.py``; returns the exit status (0 ok, 1 some images failed). Bad input
    raises :class:`~freezedet.utils.errors.UserError` (status 2 under
    :func:`~freezedet.utils.errors.run_tool`)."""
    args = argument_parser().parse_args(argv)
    setup_logger(name="freezedet")
    filter_known_warnings()
    files, skipped = collect_images(args.input)
    for f in skipped:
        print(f"skipped {f}: not an image file (extension)", file=sys.stderr)
    if not files:
        raise UserFileNotFoundError(
            f"no image files in --input {' '.join(args.input)}: give image files, folders holding "
            "them (not searched recursively) or glob patterns"
        )
    predictor = Predictor.from_config(
        args.config_file,
        args.weights,
        opts=args.opts,
        device=args.device,
        batch_size=args.batch_size,
        score_threshold=args.score_threshold,
        tile_size=args.tile,
        overlap=args.overlap,
        merge=args.merge,
        merge_iou=args.merge_iou,
        tta=args.tta,
        tta_views=args.tta_views,
    )
    summary = predict_images(predictor, files, args.output, pictures=not args.no_pictures)
    print(
        f"{summary['images']} images predicted, {summary['detections']} detections >= "
        f"{args.score_threshold} in {summary['results_json']}"
        + ("" if args.no_pictures else f", pictures in {args.output}")
    )
    for path, message in summary["failed"]:
        print(f"failed: {message}", file=sys.stderr)
    return 1 if summary["failed"] else 0
