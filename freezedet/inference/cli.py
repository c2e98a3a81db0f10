"""The command lines of ``tools/predict.py`` and ``tools/export.py``.

Only the standard library is imported here, so ``--help`` and argument errors answer without
importing torch or detectron2 (seconds on a small machine): the tools load this file on its own
before anything else. Keep it that way.

Both tools take a training run's output directory (``--run``, also spelled ``--config-file``):
the run's ``config.yaml`` is the config exactly as it was trained (every override included) and
its ``model_final.pth`` (else the checkpoint ``last_checkpoint`` names) the weights. A config file
works too, with ``--weights``; ``--weights`` and ``--opts`` override what a run directory gives.
"""

import argparse

__all__ = [
    "EXPORT_FORMATS",
    "MERGE_METHODS",
    "export_argument_parser",
    "predict_argument_parser",
]

MERGE_METHODS = ("nms", "wbf")  # merging detections across tiles (freezedet.inference.tiling)
EXPORT_FORMATS = {"torchscript": ".ts", "onnx": ".onnx"}  # format: file extension

_RUN_HELP = (
    "a training run's output directory (uses its config.yaml, the config as trained, and its "
    "weights), or a LazyConfig file / shipped config name (then --weights is required)"
)
_WEIGHTS_HELP = (
    "checkpoint (.pth) or a training output directory (its model_final.pth / last checkpoint); "
    "default: the weights of the --run directory"
)
_OPTS_HELP = "key=value config overrides (last: everything after it is an override)"
_DEBUG_HELP = "show the traceback of an input error (FREEZEDET_DEBUG=1 does the same)"

PREDICT_EXAMPLES = """\
examples:
  predict with a trained run (its config.yaml and weights, as trained):
    tools/predict.py --run output/DeepForest/faster_rcnn_fpn/effl0_frozen \\
        --input photos/ --output preds/
  large images in tiles, merged across tile borders by box fusion:
    tools/predict.py --run RUN --input big.tif --output preds/ --tile 400 --merge wbf
  test-time augmentation (the config's tta node, else the 8 flips and quarter turns):
    tools/predict.py --run RUN --input photos/ --output preds/ --tta [--tta-views 4]
  a config and weights given separately, with overrides:
    tools/predict.py --config-file configs/DeepForest/faster_rcnn_fpn.py \\
        --weights model_final.pth --input photos/ --output preds/ --opts train.device=cpu
"""

EXPORT_EXAMPLES = """\
examples:
  export a trained run to TorchScript and ONNX:
    tools/export.py --run output/DeepForest/faster_rcnn_fpn/effl0_frozen --output exported/
  predict with the exported file (the same run gives the preprocessing and class names):
    tools/predict.py --run RUN --weights exported/model.onnx --input photos/ --output preds/
"""


def _model_arguments(p: argparse.ArgumentParser):
    p.add_argument(
        "--run", "--config-file", dest="config_file", required=True, metavar="RUN", help=_RUN_HELP
    )
    p.add_argument("--weights", default=None, help=_WEIGHTS_HELP)


def predict_argument_parser(prog: str = "predict.py") -> argparse.ArgumentParser:
    """The arguments of ``tools/predict.py``."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Predict a trained freezedet model on images: one PNG with the detections\n"
        "drawn per image and one COCO results json. The image files are read as given; the\n"
        "config's datasets are never loaded.",
        epilog=PREDICT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _model_arguments(p)
    p.add_argument(
        "--input",
        nargs="+",
        required=True,
        help="image files, folders (their image files, not recursive) or glob patterns",
    )
    p.add_argument("--output", required=True, help="folder for the PNGs and results.json")
    p.add_argument(
        "--score-threshold",
        type=float,
        default=0.5,
        help="drop detections below this score, in the pictures and the json (for AP "
        "evaluation use a low value, e.g. 0.05; default 0.5)",
    )
    p.add_argument("--device", default=None, help="cpu / cuda; default: cuda if available")
    p.add_argument("--batch-size", type=int, default=4, help="images (or tiles) per model call")
    p.add_argument("--tile", type=int, default=None, help="predict in tiles of SIZE px")
    p.add_argument("--overlap", type=float, default=0.25, help="tile overlap fraction (0.25)")
    p.add_argument("--merge", choices=MERGE_METHODS, default="nms", help="merging across tiles")
    p.add_argument("--merge-iou", type=float, default=0.5, help="IoU of duplicates across tiles")
    p.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: the config's tta node, or without one DihedralTTA (the "
        "8 flips and quarter turns of each image, boxes fused): ~8x slower, more accurate boxes",
    )
    p.add_argument(
        "--tta-views",
        type=int,
        choices=(1, 2, 4, 8),
        default=None,
        help="views of the dihedral TTA (default: the tta node's, else 8)",
    )
    p.add_argument("--no-pictures", action="store_true", help="write results.json only")
    p.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help=_OPTS_HELP)
    return p


def export_argument_parser(prog: str = "export.py") -> argparse.ArgumentParser:
    """The arguments of ``tools/export.py``."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Export a trained freezedet detector to TorchScript (model.ts) and ONNX\n"
        "(model.onnx), and print how far the exported model's detections on a real image are\n"
        "from the eager model's. ONNX needs onnx and onnxruntime.",
        epilog=EXPORT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _model_arguments(p)
    p.add_argument("--output", required=True, help="folder for model.ts / model.onnx")
    p.add_argument("--format", nargs="+", choices=sorted(EXPORT_FORMATS), default=None)
    p.add_argument("--sample-image", default=None, help="default: the first test image")
    p.add_argument("--no-fold-bn", action="store_true", help="keep frozen BN unfolded")
    p.add_argument("--device", default="cpu", help="device to trace on (TorchScript runs there)")
    p.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help=_OPTS_HELP)
    return p
