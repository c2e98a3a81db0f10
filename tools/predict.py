#!/usr/bin/env python
"""Predict a trained freezedet model on your images (files, folders, globs), whole or in tiles.

    python tools/predict.py --run output/DeepForest/faster_rcnn_fpn/effl0_frozen \
        --input photos/ --output preds/ [--weights W.pth] [--tta [--tta-views 4]] \
        [--score-threshold 0.5] [--tile 400 --overlap 0.25 --merge nms|wbf] [--opts key=value ...]

writes ``preds/<image>.png`` (detections drawn with class names and scores) and
``preds/results.json`` (COCO results). All logic lives in ``freezedet.inference``.
"""

import sys

from _stdlib_cli import load_stdlib_module  # tools/, a sibling: --help before slow imports

if __name__ == "__main__":
    # --help, bad arguments: before the slow imports
    load_stdlib_module("inference", "cli.py").predict_argument_parser().parse_args()
    from freezedet.inference.predict_images import main  # noqa: E402
    from freezedet.utils.errors import run_tool  # noqa: E402

    sys.exit(run_tool(main))
