#!/usr/bin/env python
"""Score a COCO results json (e.g. tools/predict.py's results.json) against ground truth, or
evaluate a training run's model on its config's test set.

    python tools/evaluate.py --gt annotations.json --results preds/results.json \
        [--tasks bbox segm] [--format auto|coco|lvis] [--max-dets 300] [--output metrics.json]
    python tools/evaluate.py --run output/DeepForest/faster_rcnn_fpn/effl0_frozen \
        [--weights model_0000999.pth] [--output-dir DIR] [key=value ...]

COCO or LVIS ground truth, faster-coco-eval backend (``--backend pycocotools`` for the reference
implementation). All logic lives in ``freezedet.evaluation.results_file``.
"""

import sys

from _stdlib_cli import load_stdlib_module  # tools/, a sibling: --help before slow imports

if __name__ == "__main__":
    # --help, bad arguments: before the slow imports
    cli = load_stdlib_module("evaluation", "cli.py")
    parser = cli.evaluate_argument_parser(__doc__)
    cli.check_evaluate_arguments(parser, parser.parse_args())
    from freezedet.evaluation.results_file import main  # noqa: E402
    from freezedet.utils.errors import run_tool  # noqa: E402

    sys.exit(run_tool(main))
