"""K detectors on one shared frozen trunk (SharedTrunkDetectors, one trunk pass per step) vs the
same K detectors as separate models, side by side: one shared step vs K separate steps; and
inference of all K heads from one trunk pass (``eval_head=ALL_HEADS``, what ``do_test`` runs) vs
one shared-model pass per head.

Detectors: Faster R-CNN + FPN, Faster R-CNN + NAS-FPN, Cascade R-CNN + NAS-FPN on a frozen
EfficientNet-Lite0 (the DeepForest CPU recipes).
"""

import torch

from common import build_from_config, child_memory, deepforest_batches, header, interleaved
from common import parser, run_child, saved_mb, table, train_step_fn
from freezedet.modeling.meta_arch import ALL_HEADS

SHARED = "DeepForest/shared_trunk_effl0_frozen.py"
SEPARATE = {
    "fpn": "DeepForest/faster_rcnn_fpn.py",
    "nasfpn": "DeepForest/faster_rcnn_nasfpn.py",
    "cascade_nasfpn": "DeepForest/cascade_rcnn_nasfpn.py",
}


def main():
    p = parser(__doc__)
    p.add_argument(
        "--size",
        type=int,
        default=None,
        help="resize tiles to size x size (512: every neck pads alike, isolating the trunk)",
    )
    args = p.parse_args()
    batch = deepforest_batches(1, args.batch_size, size=args.size)[0]
    if args.child:
        config = SHARED if args.child == "shared" else SEPARATE[args.child]
        return run_child(
            args.device,
            lambda: train_step_fn(build_from_config(config, device=args.device)[0], batch),
        )
    shared, _ = build_from_config(SHARED, device=args.device)
    separate = {k: build_from_config(c, device=args.device)[0] for k, c in SEPARATE.items()}
    fns = {"shared": train_step_fn(shared, batch)}
    fns.update({k: train_step_fn(m, batch) for k, m in separate.items()})
    med = interleaved(fns, args.warmup, args.repeats, args.device)
    saved = {"shared": saved_mb(shared, batch)}
    saved.update({k: saved_mb(m, batch) for k, m in separate.items()})
    extra = ["--device", args.device, "--batch-size", str(args.batch_size)]
    extra += ["--size", str(args.size)] if args.size else []
    mem = {} if args.no_rss else {k: child_memory(__file__, k, extra) for k in fns}
    k_sum = sum(med[k] for k in SEPARATE)
    rows = [
        ["shared (3 heads, 1 trunk pass)", med["shared"], med["shared"] / k_sum, saved["shared"]]
    ]
    rows += [[f"separate: {k}", med[k], med[k] / k_sum, saved[k]] for k in SEPARATE]
    rows.append(["separate: sum of 3", k_sum, 1.0, sum(saved[k] for k in SEPARATE)])
    cols = ["model", "s/step", "time / separate sum", "saved MB"]
    if mem:
        for r, k in zip(rows, list(fns)):
            r += [mem[k]["peak_mb"], mem[k]["delta_mb"]]
        rows[-1] += [
            max(mem[k]["peak_mb"] for k in SEPARATE),
            sum(mem[k]["delta_mb"] for k in SEPARATE),
        ]
        cols += ["peak MB (process)", "step peak MB"]
    print(header("K shared heads vs K separate models", args))
    print(f"input: {tuple(batch[0]['image'].shape)} DeepForest train tiles\n")
    print(table(rows, cols))

    inputs = [{k: v for k, v in x.items() if k != "instances"} for x in batch]
    evals = {
        "all heads, one trunk pass": _inference_fn(shared, inputs, [ALL_HEADS]),
        "one pass per head": _inference_fn(shared, inputs, shared.head_names),
    }
    med = interleaved(evals, args.warmup, args.repeats, args.device)
    base = med["one pass per head"]
    print("\ninference of the 3 heads (shared model, no_grad):\n")
    print(table([[k, v, v / base] for k, v in med.items()], ["", "s/batch", "time / per head"]))


def _inference_fn(model, inputs, heads):
    def run():
        model.eval()
        with torch.no_grad():
            for head in heads:
                model.eval_head = head
                model(inputs)
        model.eval_head = None

    return run


if __name__ == "__main__":
    main()
