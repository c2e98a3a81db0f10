#!/usr/bin/env python
"""Split a SharedTrunkDetectors checkpoint into one stand-alone detector checkpoint per head.

  python tools/export_heads.py --config-file configs/DeepForest/shared_trunk_effl0_frozen.py \
      --checkpoint output/DeepForest/shared_trunk_effl0_frozen/model_final.pth [--output-dir DIR]

writes ``model_<head>.pth`` (plain GeneralizedRCNN layout, trunk included) for each head, e.g. for
``tools/train_net.py --eval-only`` with that head's own config.
"""

import argparse
import os
import sys

# only the standard library at the top: --help and argument errors answer before the slow imports
# (torch, detectron2, freezedet) that main() makes
DEBUG_HELP = "show the traceback of an input error (FREEZEDET_DEBUG=1 does the same)"


def argument_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config-file", required=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--output-dir", default=None, help="default: the checkpoint's directory")
    p.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    return p


def main():
    args = argument_parser().parse_args()
    from freezedet.checkpoint import AtomicDetectionCheckpointer
    from freezedet.engine import build_model, load_config
    from freezedet.utils.errors import UserValueError

    cfg = load_config(args.config_file, ["train.device=cpu"])
    model = build_model(cfg)
    if not hasattr(model, "export_heads"):
        raise UserValueError(
            f"{args.config_file}: model {type(model).__name__} has no heads to export"
        )
    AtomicDetectionCheckpointer(model).load(args.checkpoint)
    out = args.output_dir or os.path.dirname(os.path.abspath(args.checkpoint))
    for path in model.export_heads(out):
        print(path)


if __name__ == "__main__":
    argument_parser().parse_args()  # --help, bad arguments: before the slow imports
    from freezedet.utils.errors import run_tool  # noqa: E402

    sys.exit(run_tool(main))
