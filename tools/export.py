#!/usr/bin/env python
"""Export a trained freezedet detector to TorchScript (``model.ts``) and ONNX (``model.onnx``).

    python tools/export.py --config-file configs/DeepForest/faster_rcnn_fpn.py \
        --weights output/DeepForest/faster_rcnn_fpn/effl0_frozen --output exported/ \
        [--format torchscript onnx] [--sample-image tile.png] [--opts key=value ...]

prints, per file, how far the exported model's detections on a real image are from the eager
model's. ONNX needs ``onnx`` and ``onnxruntime``. All logic lives in ``freezedet.inference``.
"""

import sys

import freezedet  # noqa: F401  (registers freezedet's components and applies compat shims)
from freezedet.inference.export_cli import main

if __name__ == "__main__":
    sys.exit(main())
