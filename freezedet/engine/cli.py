"""The command line of ``tools/train_net.py`` / ``python -m freezedet.engine.launch`` (and
``tools/demo.py``).

Only the standard library is imported here, so ``tools/train_net.py --help`` answers without
importing torch or detectron2 (seconds on a small machine): the tool loads this file on its own
before anything else. Keep it that way.
"""

import argparse
import os
import sys

__all__ = ["EXAMPLES", "argument_parser"]

EXAMPLES = """\
examples:
  train a shipped recipe (a path, or a name below freezedet's configs/):
    tools/train_net.py --config-file configs/DeepForest/faster_rcnn_fpn.py
    tools/train_net.py --config-file DeepForest/faster_rcnn_fpn.py
  change config values (key=value; an unknown key is an error naming the closest ones):
    tools/train_net.py --config-file ... train.max_iter=1000 optimizer.lr=0.005 \\
        dataloader.train.total_batch_size=4 model.roi_heads.num_classes=3
  another trunk or mode (recipes that declare a `trunk`; trunks: freezedet/config/trunks.py):
    tools/train_net.py --config-file DeepForest/faster_rcnn_fpn.py trunk.name=effl1 \\
        trunk.mode=finetune            # writes to output/DeepForest/faster_rcnn_fpn/effl1_finetune
  continue in the same output directory:
    tools/train_net.py --config-file ... --resume
  evaluate trained weights:
    tools/train_net.py --config-file ... --eval-only \\
        train.init_checkpoint=output/DeepForest/faster_rcnn_fpn/effl0_frozen/model_final.pth
  2 processes (2 GPUs with NCCL, or 2 CPU processes with gloo without CUDA):
    tools/train_net.py --config-file ... --num-gpus 2
  your own COCO-format data: see docs/getting_started.md, "Your own data" (configs/OwnData/).

Each run writes into train.output_dir (default output/<config path below configs/>, plus
<trunk>_<mode> for a recipe that declares a trunk): log.txt,
config.yaml (the full config), model.txt (the model), env.txt (versions), metrics.json,
checkpoints.
"""


def _default_dist_url() -> str:
    # as detectron2: a port derived from the user id, so users on one machine rarely collide
    port = 2**15 + 2**14 + hash(os.getuid() if sys.platform != "win32" else 1) % 2**14
    return f"tcp://127.0.0.1:{port}"


def argument_parser(epilog: str = EXAMPLES, prog: str = "train_net.py") -> argparse.ArgumentParser:
    """detectron2's training arguments (``--num-gpus`` also means CPU processes on a machine
    without CUDA) plus ``--device`` and ``--allow-missing-weights``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Train or evaluate a freezedet LazyConfig detector.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config-file", default="", metavar="FILE", help="LazyConfig .py file")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last checkpoint in train.output_dir (says so if there is none)",
    )
    parser.add_argument("--eval-only", action="store_true", help="evaluate, do not train")
    parser.add_argument(
        "--allow-missing-weights",
        action="store_true",
        help="--eval-only even if train.init_checkpoint is empty or leaves model weights "
        "uninitialised (random heads: AP ~0); otherwise that is an error",
    )
    parser.add_argument(
        "--num-gpus", type=int, default=1, help="processes per machine (GPUs, or CPU processes)"
    )
    parser.add_argument("--num-machines", type=int, default=1, help="total number of machines")
    parser.add_argument(
        "--machine-rank", type=int, default=0, help="the rank of this machine (unique per machine)"
    )
    parser.add_argument(
        "--dist-url",
        default=_default_dist_url(),
        help="initialization URL for torch.distributed (multi-machine: tcp://host:port)",
    )
    parser.add_argument(
        "--device",
        default=None,
        help="override train.device (cpu / cuda); default: cuda if present",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an input error (bad data, config, arguments), which is "
        "otherwise one paragraph; FREEZEDET_DEBUG=1 does the same",
    )
    parser.add_argument(
        "opts",
        default=None,
        nargs=argparse.REMAINDER,
        help="config overrides, key=value (e.g. train.max_iter=1000)",
    )
    return parser
