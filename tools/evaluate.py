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

import importlib.util
import os
import sys


def _load_stdlib_module(*parts):
    """``freezedet/<parts>`` loaded from its file without importing the freezedet package
    (which imports torch and detectron2, seconds), so that ``--help`` and argument errors answer
    at once; the file imports only the standard library."""
    package = importlib.util.find_spec("freezedet")
    path = os.path.join(package.submodule_search_locations[0], *parts)
    spec = importlib.util.spec_from_file_location("_freezedet_" + "_".join(parts)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    # --help, bad arguments: before the slow imports
    cli = _load_stdlib_module("evaluation", "cli.py")
    parser = cli.evaluate_argument_parser(__doc__)
    cli.check_evaluate_arguments(parser, parser.parse_args())
    from freezedet.evaluation.results_file import main  # noqa: E402
    from freezedet.utils.errors import run_tool  # noqa: E402

    sys.exit(run_tool(main))
