#!/usr/bin/env python
"""Total / trainable parameters per component (trunk, adapters, neck, rpn, heads), trainable %,
and FLOPs at a given input size, for any config:

    python tools/analyze_model.py --config-file configs/DeepForest/*.py --input-size 640 640
"""

import sys

import freezedet  # noqa: F401
from freezedet.analysis.report import main
from freezedet.utils.errors import run_tool

if __name__ == "__main__":
    sys.exit(run_tool(main))
