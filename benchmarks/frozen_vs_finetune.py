"""Frozen vs fine-tuned trunk, same detector: training step time and memory, side by side.

The fine-tuned variant is the recipe at ``trunk.mode=finetune`` (trunk weights train, BN
statistics frozen); the frozen variant (``trunk.mode=frozen``) runs freezedet's default
frozen-trunk execution. ``--trunk`` selects another trunk (``trunk.name=``).
"""

import os

from common import build_from_config, child_memory, deepforest_batches, header, interleaved
from common import parser, run_child, saved_mb, table, train_step_fn

MODES = ("frozen", "finetune")


def build(config, trunk, mode, device):
    selection = ([f"trunk.name={trunk}"] if trunk else []) + [f"trunk.mode={mode}"]
    model, _ = build_from_config(config, selection, device)
    return model


def main():
    p = parser(__doc__)
    p.add_argument("--config", default="DeepForest/faster_rcnn_fpn.py")
    p.add_argument(
        "--trunk", default=None, help="a key of freezedet.config.TRUNKS (default: the recipe's)"
    )
    args = p.parse_args()
    batch = [
        {k: (v.to(args.device) if hasattr(v, "to") else v) for k, v in d.items()}
        for d in deepforest_batches(1, args.batch_size)[0]
    ]
    if args.child:
        return run_child(
            args.device,
            lambda: train_step_fn(build(args.config, args.trunk, args.child, args.device), batch),
        )
    models = {m: build(args.config, args.trunk, m, args.device) for m in MODES}
    med = interleaved(
        {m: train_step_fn(models[m], batch) for m in MODES}, args.warmup, args.repeats, args.device
    )
    saved = {m: saved_mb(models[m], batch) for m in MODES}
    extra = ["--config", args.config, "--device", args.device, "--batch-size", str(args.batch_size)]
    extra += ["--trunk", args.trunk] if args.trunk else []
    mem = {} if args.no_rss else {m: child_memory(__file__, m, extra) for m in MODES}
    rows = []
    for m in MODES:
        row = [m, med[m], med[m] / med["finetune"], saved[m], saved[m] / saved["finetune"]]
        if mem:
            row += [
                mem[m]["peak_mb"],
                mem[m]["delta_mb"],
                mem[m]["delta_mb"] / mem["finetune"]["delta_mb"],
            ]
        rows.append(row)
    cols = ["trunk", "s/step", "time / finetune", "saved MB", "saved / finetune"]
    if mem:
        cols += ["peak MB (process)", "step peak MB", "step peak / finetune"]
    trunk = f" trunk.name={args.trunk}" if args.trunk else ""
    print(header(f"Frozen vs fine-tuned: {os.path.basename(args.config)}{trunk}", args))
    print(table(rows, cols))


if __name__ == "__main__":
    main()
