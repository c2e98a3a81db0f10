"""Training-step time and peak memory of one detector, frozen vs fine-tuned, fp32 / bf16 trunk /
AMP, side by side: the CUDA paths ``benchmarks/gpu_check.sh`` measures on a lent GPU.

Variants (same model, same batch of DeepForest tiles resized to ``--size``):
  frozen            freezedet's frozen trunk, fp32
  frozen+bf16trunk  the frozen trunk under bf16 autocast (``trunk_autocast="bf16"``), rest fp32
  frozen+amp        the whole step under fp16 autocast with a GradScaler (detectron2's
                    AMPTrainer), the frozen trunk inside it
  finetune          the trunk trains (FrozenBN statistics), fp32
  finetune+amp      fine-tuned, fp16 autocast + GradScaler

Step times are medians of interleaved steps in one process; peak memory is measured per variant
in a fresh child process (CUDA allocator peak during the steps). Runs on CPU too (for a check of
the script itself; AMP and the bf16 trunk are CUDA-only and then equal fp32).

    python benchmarks/gpu_steps.py --config COCO/cascade_rcnn_nasfpn_72ep.py \\
        --size 1024 --batch-size 8
"""

import contextlib
import os

import torch

from common import build_from_config, child_memory, deepforest_batches, header, interleaved
from common import parser, run_child, table
from detectron2.utils.events import EventStorage

VARIANTS = ("frozen", "frozen+bf16trunk", "frozen+amp", "finetune", "finetune+amp")


def build(config, variant, device):
    trunk = "model.backbone.bottom_up"
    opts = [f"{trunk}.mode={'finetune' if variant.startswith('finetune') else 'frozen'}"]
    if variant == "frozen+bf16trunk":
        opts.append(f"{trunk}.trunk_autocast=bf16")
    model, _ = build_from_config(config, opts, device)
    return model


def step_fn(model, batch, amp: bool, device: str):
    """One SGD step; with ``amp``: fp16 autocast + GradScaler, as detectron2's AMPTrainer."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-4, momentum=0.9)
    cuda = device.startswith("cuda")
    scaler = torch.amp.GradScaler("cuda") if amp and cuda else None

    def step():
        model.train()
        ctx = torch.autocast("cuda", dtype=torch.float16) if scaler else contextlib.nullcontext()
        with EventStorage(), ctx:
            loss = sum(model(batch).values())
        opt.zero_grad(set_to_none=True)
        if scaler:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        return loss.item()

    return step


def main():
    p = parser(__doc__)
    p.add_argument("--config", default="COCO/cascade_rcnn_nasfpn_72ep.py")
    p.add_argument("--size", type=int, default=1024, help="tiles resized to size x size")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    args = p.parse_args()
    batch = [
        {k: (v.to(args.device) if hasattr(v, "to") else v) for k, v in d.items()}
        for d in deepforest_batches(1, args.batch_size, size=args.size)[0]
    ]
    if args.child:
        return run_child(
            args.device,
            lambda: step_fn(
                build(args.config, args.child, args.device),
                batch,
                args.child.endswith("amp"),
                args.device,
            ),
        )
    fns = {
        v: step_fn(build(args.config, v, args.device), batch, v.endswith("amp"), args.device)
        for v in args.variants
    }
    med = interleaved(fns, args.warmup, args.repeats, args.device)
    extra = ["--config", args.config, "--device", args.device]
    extra += ["--batch-size", str(args.batch_size), "--size", str(args.size)]
    mem = {} if args.no_rss else {v: child_memory(__file__, v, extra) for v in args.variants}
    ref = "finetune" if "finetune" in med else args.variants[0]
    rows = []
    for v in args.variants:
        row = [v, med[v], med[v] / med[ref]]
        if mem:
            row += [mem[v]["peak_mb"], mem[v]["peak_mb"] / mem[ref]["peak_mb"]]
        rows.append(row)
    cols = ["variant", "s/step", f"time / {ref}"]
    if mem:
        cols += ["peak MB", f"peak / {ref}"]
    title = f"Training step: {os.path.basename(args.config)} at {args.size} px"
    print(header(title, args))
    if args.device.startswith("cuda"):
        print(f"GPU: {torch.cuda.get_device_name()}\n")
    print(table(rows, cols))


if __name__ == "__main__":
    main()
