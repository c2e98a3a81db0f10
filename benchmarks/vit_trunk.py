"""Frozen vs fine-tuned ViT-S/14 trunk (DINOv2 layout), and frozen with the feature cache: the
training step of the same detector at several input sizes, side by side.

The detector is ``DeepForest/faster_rcnn_simplefpn.py`` (simple pyramid + FPN
P2-P6, 128 channels); the fine-tuned variant trains the trunk (``mode=finetune``), the cached
variant is the frozen one with a :class:`FeatureCache` filled during warm-up (the steady state of
a later epoch over a finite set of views). Weights are random (none ship offline): speed and
memory do not depend on their values. DeepForest tiles (400 px) are resized to each size.
"""

import argparse
import copy
import os

from common import build_from_config, child_memory, deepforest_batches, header, interleaved
from common import parser, run_child, saved_mb, table, train_step_fn
from freezedet.modeling.backbone import FeatureCache

VARIANTS = ("frozen", "finetune", "frozen+cache")


def build(config, variant, device):
    mode = "finetune" if variant == "finetune" else "frozen"
    model, _ = build_from_config(config, [f"trunk.mode={mode}"], device)
    if variant == "frozen+cache":
        model.backbone.bottom_up.feature_cache = FeatureCache(budget_mb=1024)
    return model


def batch_at(size, batch_size, device):
    return [
        {k: (v.to(device) if hasattr(v, "to") else v) for k, v in d.items()}
        for d in deepforest_batches(1, batch_size, size=size)[0]
    ]


def main():
    p = parser(__doc__)
    p.add_argument("--config", default="DeepForest/faster_rcnn_simplefpn.py")
    p.add_argument("--sizes", type=int, nargs="+", default=[400, 462, 518])
    p.add_argument("--size", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        batch = batch_at(args.size, args.batch_size, args.device)
        model = build(args.config, args.child, args.device)
        step = train_step_fn(model, batch)
        if args.child == "frozen+cache":
            step()  # fill the cache: the measured steps are the steady state
        return run_child(args.device, lambda: step)
    base = build(args.config, "frozen", args.device)
    models = {
        "frozen": base,
        "finetune": build(args.config, "finetune", args.device),
        "frozen+cache": copy.deepcopy(base),
    }
    models["frozen+cache"].backbone.bottom_up.feature_cache = FeatureCache(budget_mb=1024)
    rows = []
    for size in args.sizes:
        batch = batch_at(size, args.batch_size, args.device)
        med = interleaved(
            {v: train_step_fn(models[v], batch) for v in VARIANTS},
            args.warmup,
            args.repeats,
            args.device,
        )
        saved = {v: saved_mb(models[v], batch) for v in VARIANTS}
        extra = ["--config", args.config, "--device", args.device]
        extra += ["--batch-size", str(args.batch_size), "--size", str(size)]
        mem = {} if args.no_rss else {v: child_memory(__file__, v, extra) for v in VARIANTS}
        for v in VARIANTS:
            row = [size, v, med[v], med[v] / med["finetune"], saved[v]]
            if mem:
                row += [mem[v]["peak_mb"], mem[v]["delta_mb"]]
                row += [mem[v]["delta_mb"] / mem["finetune"]["delta_mb"]]
            rows.append(row)
    cols = ["size", "trunk", "s/step", "time / finetune", "saved MB"]
    if not args.no_rss:
        cols += ["peak MB (process)", "step peak MB", "step peak / finetune"]
    print(header(f"ViT-S/14 trunk, random weights: {os.path.basename(args.config)}", args))
    print(table(rows, cols))


if __name__ == "__main__":
    main()
