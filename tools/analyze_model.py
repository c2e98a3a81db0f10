#!/usr/bin/env python
"""Total / trainable parameters per component (trunk, adapters, neck, rpn, heads), trainable %,
and FLOPs at a given input size, for any config:

    python tools/analyze_model.py --config-file configs/DeepForest/*.py --input-size 640 640
"""

import sys

from _stdlib_cli import load_stdlib_module  # tools/, a sibling: --help before slow imports

if __name__ == "__main__":
    # --help, bad arguments: before the slow imports
    load_stdlib_module("analysis", "cli.py").analyze_argument_parser(__doc__).parse_args()
    import freezedet  # noqa: E402,F401
    from freezedet.analysis.report import main  # noqa: E402
    from freezedet.utils.errors import run_tool  # noqa: E402

    sys.exit(run_tool(main))
