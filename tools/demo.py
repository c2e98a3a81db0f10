#!/usr/bin/env python
"""``make demo``: train Faster R-CNN FPN on the frozen ImageNet EfficientNet-Lite0 on real
DeepForest tiles (CPU), evaluate COCO box AP on the val tiles, print a one-line summary and save a
PNG of predictions. Accepts train_net's arguments (``--config-file``, ``key=value`` ...)."""

import sys

from _stdlib_cli import load_stdlib_module  # tools/, a sibling: --help before slow imports

if __name__ == "__main__":
    # --help, bad arguments: before the slow imports
    load_stdlib_module("engine", "cli.py").argument_parser(prog="demo.py").parse_args()
    from freezedet.engine.demo import run_demo as main  # noqa: E402
    from freezedet.utils.errors import run_tool  # noqa: E402

    sys.exit(run_tool(main))
