#!/usr/bin/env python
"""Score a COCO results json (e.g. tools/predict.py's results.json) against ground truth.

    python tools/evaluate.py --gt annotations.json --results preds/results.json \
        [--tasks bbox segm] [--format auto|coco|lvis] [--max-dets 300] [--output metrics.json]

COCO or LVIS ground truth, faster-coco-eval backend (``--backend pycocotools`` for the reference
implementation). All logic lives in ``freezedet.evaluation.results_file``.
"""

import sys

from freezedet.evaluation.results_file import main
from freezedet.utils.errors import run_tool

if __name__ == "__main__":
    sys.exit(run_tool(main))
