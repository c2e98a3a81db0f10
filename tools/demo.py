#!/usr/bin/env python
"""``make demo``: train Faster R-CNN FPN on the frozen ImageNet EfficientNet-Lite0 on real
DeepForest tiles (CPU), evaluate COCO box AP on the val tiles, print a one-line summary and save a
PNG of predictions. Accepts train_net's arguments (``--config-file``, ``key=value`` ...)."""

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
    _load_stdlib_module("engine", "cli.py").argument_parser(prog="demo.py").parse_args()
    from freezedet.engine.demo import run_demo as main  # noqa: E402
    from freezedet.utils.errors import run_tool  # noqa: E402

    sys.exit(run_tool(main))
