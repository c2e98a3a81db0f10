"""The logic behind ``tools/export.py``: export a trained model to TorchScript / ONNX and check
the exported files against the eager model on a real image.

    python tools/export.py --run output/DeepForest/cascade_rcnn_nasfpn/effl0_frozen \
        --output exported/

writes ``exported/model.ts`` and ``exported/model.onnx``; ``tools/predict.py --run <run>
--weights exported/model.onnx`` predicts with them. ``--run`` is a training run's output
directory (its ``config.yaml`` and weights); a config file with ``--weights`` works too.
"""

import os

from detectron2.config import instantiate
from detectron2.utils.logger import setup_logger

from ..engine.defaults import filter_known_warnings
from ..utils.errors import UserFileNotFoundError
from .cli import export_argument_parser
from .export import EXPORT_FORMATS, ExportedModel, detection_differences, export_model
from .predictor import Predictor

__all__ = ["main"]


def _sample_image(predictor: Predictor, path: str, config_file: str) -> str:
    """``path``, else the first image of the config's test dataset."""
    if path:
        return path
    records = instantiate(predictor.config.dataloader.test.dataset)
    if records:
        return records[0]["file_name"]
    raise UserFileNotFoundError(
        f"{config_file}: no test image to trace with; pass --sample-image (a real image)"
    )


def main(argv=None) -> int:
    """``tools/export.py``; returns the exit status. Bad input raises
    :class:`~freezedet.utils.errors.UserError` (status 2 under ``run_tool``)."""
    args = export_argument_parser().parse_args(argv)
    setup_logger(name="freezedet")
    filter_known_warnings()
    formats = args.format or sorted(EXPORT_FORMATS)
    predictor = Predictor.from_config(
        args.config_file, args.weights, opts=args.opts, device=args.device
    )
    sample = _sample_image(predictor, args.sample_image, args.config_file)
    image = predictor.read(sample)
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
