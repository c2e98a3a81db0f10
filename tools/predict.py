#!/usr/bin/env python
"""Predict a trained freezedet model on your images (files, folders, globs), whole or in tiles.

    python tools/predict.py --config-file configs/DeepForest/faster_rcnn_fpn.py \
        --weights output/DeepForest/faster_rcnn_fpn/effl0_frozen --input photos/ --output preds/ \
        [--score-threshold 0.5] [--tile 400 --overlap 0.25 --merge nms|wbf] [--opts key=value ...]

writes ``preds/<image>.png`` (detections drawn with class names and scores) and
``preds/results.json`` (COCO results). All logic lives in ``freezedet.inference``.
"""

import sys

import freezedet  # noqa: F401  (registers freezedet's components and applies compat shims)
from freezedet.inference.predict_images import main

if __name__ == "__main__":
    sys.exit(main())
