#!/usr/bin/env python
"""Total / trainable parameters per component (trunk, adapters, neck, rpn, heads), trainable %,
and FLOPs at a given input size, for any config:

    python tools/analyze_model.py --config-file configs/DeepForest/*.py --input-size 640 640
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
    _load_stdlib_module("analysis", "cli.py").analyze_argument_parser(__doc__).parse_args()
    import freezedet  # noqa: E402,F401
    from freezedet.analysis.report import main  # noqa: E402
    from freezedet.utils.errors import run_tool  # noqa: E402

    sys.exit(run_tool(main))
