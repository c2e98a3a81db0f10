#!/usr/bin/env python
"""Predict a trained freezedet model on your images (files, folders, globs), whole or in tiles.

    python tools/predict.py --run output/DeepForest/faster_rcnn_fpn/effl0_frozen \
        --input photos/ --output preds/ [--weights W.pth] [--tta [--tta-views 4]] \
        [--score-threshold 0.5] [--tile 400 --overlap 0.25 --merge nms|wbf] [--opts key=value ...]

writes ``preds/<image>.png`` (detections drawn with class names and scores) and
``preds/results.json`` (COCO results). All logic lives in ``freezedet.inference``.
"""

import importlib.util
import os
import sys


def _cli():
    """``freezedet.inference.cli`` loaded from its file without importing the freezedet package
    (which imports torch and detectron2, seconds), so that ``--help`` and argument errors answer
    at once; ``cli.py`` imports only the standard library."""
    package = importlib.util.find_spec("freezedet")
    path = os.path.join(package.submodule_search_locations[0], "inference", "cli.py")
    spec = importlib.util.spec_from_file_location("_freezedet_inference_cli", path)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    return cli


if __name__ == "__main__":
    _cli().predict_argument_parser().parse_args()  # --help, bad arguments: before the slow imports
    from freezedet.inference.predict_images import main  # noqa: E402
    from freezedet.utils.errors import run_tool  # noqa: E402

    sys.exit(run_tool(main))
