#!/usr/bin/env python
"""Train / evaluate a freezedet LazyConfig model (detectron2's lazyconfig_train_net, extended).

    python tools/train_net.py --config-file configs/DeepForest/faster_rcnn_fpn_effl0_frozen.py \
        [--num-gpus N] [--resume] [--eval-only] [key=value ...]

Without CUDA, ``--num-gpus N`` starts N CPU processes (gloo). All logic lives in
``freezedet.engine``.
"""

import freezedet  # noqa: F401  (registers freezedet's components and applies compat shims)
from freezedet.engine import argument_parser, run

if __name__ == "__main__":
    args = argument_parser().parse_args()
    print("Command Line Args:", args)
    run(args)
