"""The logic behind ``tools/export.py``: export a trained model to TorchScript / ONNX and check
the exported files against the eager model on a real image.

    python tools/export.py --config-file configs/DeepForest/cascade_rcnn_nasfpn.py \
        --weights output/DeepForest/cascade_rcnn_nasfpn/effl0_frozen --output exported/

writes ``exported/model.ts`` and ``exported/model.onnx``; ``tools/predict.py --weights
exported/model.onnx`` (same config) predicts with them.
"""

import argparse
import os
import sys

from detectron2.data import DatasetCatalog
from detectron2.utils.logger import setup_logger

from .export import EXPORT_FORMATS, ExportedModel, detection_differences, export_model
from .predictor import Predictor

__all__ = ["main"]


def _sample_image(predictor: Predictor, path: str, config_file: str) -> str:
    if path:
        return path
    name = predictor.metadata.name if predictor.metadata is not None else None
    if name and name in DatasetCatalog.list():
        records = DatasetCatalog.get(name)
        if records:
            return records[0]["file_name"]
    raise FileNotFoundError(
        f"{config_file}: no test image to trace with; pass --sample-image (a real image)"
    )


def main(argv=None) -> int:
    """``tools/export.py``; returns the exit status (2: bad arguments)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config-file", required=True)
    p.add_argument("--weights", required=True, help="checkpoint or training output directory")
    p.add_argument("--output", required=True, help="folder for model.ts / model.onnx")
    p.add_argument("--format", nargs="+", choices=sorted(EXPORT_FORMATS), default=None)
    p.add_argument("--sample-image", default=None, help="default: the first test image")
    p.add_argument("--no-fold-bn", action="store_true", help="keep frozen BN unfolded")
    p.add_argument("--device", default="cpu", help="device to trace on (TorchScript runs there)")
    p.add_argument(
        "--opts",
        nargs=argparse.REMAINDER,
        default=[],
        help="key=value config overrides (last: everything after it is an override)",
    )
    args = p.parse_args(argv)
    setup_logger(name="freezedet")
    formats = args.format or sorted(EXPORT_FORMATS)
    try:
        predictor = Predictor.from_config(
            args.config_file, args.weights, opts=args.opts, device=args.device
        )
        sample = _sample_image(predictor, args.sample_image, args.config_file)
        image = predictor.read(sample)
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"export: error: {e}", file=sys.stderr)
        return 2
    inputs = predictor.preprocess(image)
    reference = predictor(image)
    for fmt in formats:
        path = os.path.join(args.output, "model" + EXPORT_FORMATS[fmt])
        export_model(predictor.model, inputs["image"], path, fold_bn=not args.no_fold_bn)
        exported = Predictor(
            model=ExportedModel(path=path, device=args.device),
            input_format=predictor.input_format,
            augmentations=predictor.augmentations.augs,
            metadata=predictor.metadata,
        )
        diff = detection_differences(reference, exported(image))
        print(
            f"{path}: {diff['count'][1]} detections on {sample} (eager {diff['count'][0]}), "
            f"max box difference {diff['box']:.2g} px, max score difference {diff['score']:.2g}"
        )
    return 0
