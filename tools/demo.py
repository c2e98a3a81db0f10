#!/usr/bin/env python
"""``make demo``: train Faster R-CNN FPN on the frozen ImageNet EfficientNet-Lite0 on real
DeepForest tiles (CPU), evaluate COCO box AP on the val tiles, print a one-line summary and save a
PNG of predictions. Accepts train_net's arguments (``--config-file``, ``key=value`` ...)."""

import sys

import freezedet  # noqa: F401
from freezedet.engine.demo import run_demo
from freezedet.utils.errors import run_tool

if __name__ == "__main__":
    sys.exit(run_tool(run_demo))
