#!/usr/bin/env python
"""Export a trained freezedet detector to TorchScript (``model.ts``) and ONNX (``model.onnx``).

    python tools/export.py --run output/DeepForest/faster_rcnn_fpn/effl0_frozen \
        --output exported/ [--weights W.pth] \
        [--format torchscript onnx] [--sample-image tile.png] [--opts key=value ...]

prints, per file, how far the exported model's detections on a real image are from the eager
model's. ONNX needs ``onnx`` and ``onnxruntime``. All logic lives in ``freezedet.inference``.
"""

import importlib.util
import os
import sys


def _cli():
    """``freezedet.inference.cli`` loaded from its file without importing the freezedet package
    (which imports torch and detectron2, seconds), so that ``--help`` and argument errors answer
    at once; ``cli.py`` imports only the standard library."""
    package = importlib.util.find_spec("freezedet")
    path = os.path.join(package.submodule_search_locations[0], "inference", "cli.py")
    spec = importlib.util.spec_from_file_location("_freezedet_inference_cli", path)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    return cli


if __name__ == "__main__":
    _cli().export_argument_parser().parse_args()  # --help, bad arguments: before the slow imports
    from freezedet.inference.export_cli import main  # noqa: E402
    from freezedet.utils.errors import run_tool  # noqa: E402

    sys.exit(run_tool(main))
