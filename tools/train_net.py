#!/usr/bin/env python
"""Train / evaluate a freezedet LazyConfig model (detectron2's lazyconfig_train_net, extended).

    python tools/train_net.py --config-file configs/DeepForest/faster_rcnn_fpn.py \\
        [--num-gpus N] [--resume] [--eval-only] [key=value ...]

Without CUDA, ``--num-gpus N`` starts N CPU processes (gloo). ``--help`` lists examples. All
logic lives in ``freezedet.engine``; ``python -m freezedet.engine.launch`` is the same command.
"""

import os
import sys

from _stdlib_cli import load_stdlib_module  # tools/, a sibling: --help before slow imports

if __name__ == "__main__":
    args = load_stdlib_module("engine", "cli.py").argument_parser().parse_args()
    from freezedet.engine.launch import run  # noqa: E402  (after parsing)
    from freezedet.utils.errors import DEBUG_ENV, call_main  # noqa: E402

    if args.debug:  # also in the processes --num-gpus starts
        os.environ[DEBUG_ENV] = "1"
    # an input error (bad data, config, arguments): one paragraph, exit status 2
    sys.exit(call_main(run, args, prog="freezedet"))
