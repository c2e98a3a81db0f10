#!/usr/bin/env python
"""Train / evaluate a freezedet LazyConfig model (detectron2's lazyconfig_train_net, extended).

    python tools/train_net.py --config-file configs/DeepForest/faster_rcnn_fpn.py \\
        [--num-gpus N] [--resume] [--eval-only] [key=value ...]

Without CUDA, ``--num-gpus N`` starts N CPU processes (gloo). ``--help`` lists examples. All
logic lives in ``freezedet.engine``; ``python -m freezedet.engine.launch`` is the same command.
"""

import importlib.util
import os
import sys


def _argument_parser():
    """``freezedet.engine.cli.argument_parser``, loaded from its file without importing the
    freezedet package (which imports torch and detectron2, seconds), so that ``--help`` and
    argument errors answer at once; ``cli.py`` imports only the standard library."""
    package = importlib.util.find_spec("freezedet")
    path = os.path.join(package.submodule_search_locations[0], "engine", "cli.py")
    spec = importlib.util.spec_from_file_location("_freezedet_cli", path)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    return cli.argument_parser()


if __name__ == "__main__":
    args = _argument_parser().parse_args()
    from freezedet.engine.launch import run  # noqa: E402  (after parsing: see _argument_parser)
    from freezedet.utils.errors import DEBUG_ENV, call_main  # noqa: E402

    if args.debug:  # also in the processes --num-gpus starts
        os.environ[DEBUG_ENV] = "1"
    # an input error (bad data, config, arguments): one paragraph, exit status 2
    sys.exit(call_main(run, args, prog="freezedet"))
