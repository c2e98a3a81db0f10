"""The command line of ``tools/evaluate.py``.

Only the standard library is imported here, so ``--help`` and argument errors answer without
importing torch or detectron2 (seconds on a small machine): the tool loads this file on its own
before anything else. Keep it that way.
"""

import argparse
from typing import Union

__all__ = ["check_evaluate_arguments", "evaluate_argument_parser"]

_DEBUG_HELP = "show the traceback of an input error (FREEZEDET_DEBUG=1 does the same)"


def _max_dets_arg(value: str) -> Union[int, str]:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: a number or 'auto'") from None


def evaluate_argument_parser(description: str = "", prog: str = "evaluate.py"):
    """The arguments of ``tools/evaluate.py``."""
    p = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--gt", help="ground-truth json (COCO or LVIS format)")
    p.add_argument("--results", help="results json (a list of detections)")
    p.add_argument(
        "--run",
        metavar="DIR",
        help="instead of --gt/--results: evaluate a training run's model on its config's test "
        "set, with its config.yaml (every training override) and weights (model_final.pth, else "
        "the last checkpoint); writes DIR/eval/eval_results.json unless --output-dir",
    )
    p.add_argument("--weights", help="with --run: these weights instead of the run's")
    p.add_argument(
        "--output-dir", help="with --run: where the evaluation writes (default DIR/eval)"
    )
    p.add_argument("--device", help="with --run: cpu / cuda (default: cuda if present)")
    p.add_argument("--tasks", nargs="+", choices=("bbox", "segm"), default=None)
    p.add_argument("--format", choices=("auto", "coco", "lvis"), default="auto")
    p.add_argument(
        "--backend", choices=("faster_coco_eval", "pycocotools"), default="faster_coco_eval"
    )
    p.add_argument(
        "--max-dets",
        type=_max_dets_arg,
        default=None,
        help="detections per image AP counts (default COCO 100, LVIS 300; warns when an image "
        "has more objects); 'auto': twice the busiest image, as training's auto",
    )
    p.add_argument("--output", default=None, help="also write the metrics to this json")
    p.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    p.add_argument(
        "opts",
        nargs=argparse.REMAINDER,
        help="with --run: config overrides, key=value (e.g. dataloader.test.dataset.names=...)",
    )
    return p


def check_evaluate_arguments(parser: argparse.ArgumentParser, args) -> None:
    """Either ``--run`` or both ``--gt`` and ``--results``; the ``--run`` options only with it."""
    if args.run:
        if args.gt or args.results:
            parser.error("--run evaluates a run's model: give it without --gt / --results")
        return
    if not (args.gt and args.results):
        parser.error("give --gt and --results (score a results json), or --run DIR")
    given = [
        f"--{k.replace('_', '-')}" for k in ("weights", "output_dir", "device") if getattr(args, k)
    ]
    if given or args.opts:
        parser.error(f"{', '.join(given + list(args.opts))}: only with --run")
