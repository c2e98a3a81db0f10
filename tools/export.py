#!/usr/bin/env python
"""Export a trained freezedet detector to TorchScript (``model.ts``) and ONNX (``model.onnx``).

    python tools/export.py --run output/DeepForest/faster_rcnn_fpn/effl0_frozen \
        --output exported/ [--weights W.pth] \
        [--format torchscript onnx] [--sample-image tile.png] [--opts key=value ...]

prints, per file, how far the exported model's detections on a real image are from the eager
model's. ONNX needs ``onnx`` and ``onnxruntime``. All logic lives in ``freezedet.inference``.
"""

import sys

from _stdlib_cli import load_stdlib_module  # tools/, a sibling: --help before slow imports

if __name__ == "__main__":
    # --help, bad arguments: before the slow imports
    load_stdlib_module("inference", "cli.py").export_argument_parser().parse_args()
    from freezedet.inference.export_cli import main  # noqa: E402
    from freezedet.utils.errors import run_tool  # noqa: E402

    sys.exit(run_tool(main))
