"""freezedet's frozen trunk vs a naive frozen trunk (``requires_grad=False``, live BatchNorm in
eval mode), trunk forward and a whole Faster R-CNN training step, side by side.

Variants of the trunk (same weights):
  naive            timm/detectron2 BatchNorm modules in eval mode, parameters requires_grad=False
  no_grad              freezedet frozen, execution switches off (FrozenBN, torch.no_grad)
  fold                 + BN folded into the convs
  fold+cl (default)    + channels_last: freezedet's default
  fold+cl+inference    + torch.inference_mode (outputs cloned)
  fold+cl+compile      + torch.compile (only with --compile; its first call compiles)
"""

import time

import torch

from common import build_from_config, deepforest_batches, header, interleaved, parser, table
from common import saved_mb, train_step_fn
from freezedet.modeling.backbone import FreezableResNet, TimmBackbone

TRUNKS = {
    "effl0": lambda **k: TimmBackbone(model_name="tf_efficientnet_lite0", **k),
    "r50": lambda **k: FreezableResNet.build(depth=50, **k),
}


def naive(build):
    """What a detector gets from ``requires_grad_(False)`` alone: live BN in eval mode."""
    m = build(mode="finetune", norm="BN")
    m.requires_grad_(False)
    return m.eval()


def trunk_variants(name, compile_too):
    build = TRUNKS[name]
    ref = naive(build)
    variants = {
        "naive": ref,
        "no_grad": build(fold_bn=False, channels_last=False),
        "fold": build(channels_last=False),
        "fold+cl (default)": build(),
        "fold+cl+inference": build(inference_mode=True),
    }
    if compile_too:
        variants["fold+cl+compile"] = build(compile=True)
    state = {k: v for k, v in ref.state_dict().items() if "num_batches_tracked" not in k}
    for m in variants.values():
        if m is not ref:
            m.load_state_dict(state)
            m.eval()
    return variants


def input_tensor(batches):
    x = torch.stack([b["image"].float() for b in batches[0]])
    x = (x - 127.0) / 128.0
    pad = (-x.shape[-1]) % 32, (-x.shape[-2]) % 32
    return torch.nn.functional.pad(x, (0, pad[0], 0, pad[1]))


def main():
    p = parser(__doc__)
    p.add_argument("--compile", action="store_true", help="also time torch.compile (slow)")
    args = p.parse_args()
    torch.set_grad_enabled(True)
    batches = deepforest_batches(1, args.batch_size)
    x = input_tensor(batches).to(args.device)
    out = [header("Frozen trunk: freezedet vs naive requires_grad=False", args)]
    out.append(f"input {tuple(x.shape)} (DeepForest train tiles, normalized, padded)\n")
    for name in TRUNKS:
        variants = {k: m.to(args.device) for k, m in trunk_variants(name, args.compile).items()}
        with torch.no_grad():
            ref = variants["naive"](x)
        rows, fns = [], {}
        for k, m in variants.items():
            t0 = time.perf_counter()
            y = m(x)  # first call: builds (folds / compiles) the runtime copy
            first = time.perf_counter() - t0
            err = max(((y[f] - ref[f]).abs().max() / ref[f].abs().max()).item() for f in ref)
            fns[k] = lambda m=m: m(x)
            rows.append([k, first, err])
        med = interleaved(fns, args.warmup, args.repeats, args.device)
        base = med["naive"]
        rows = [r[:1] + [med[r[0]], base / med[r[0]]] + r[1:] for r in rows]
        out.append(f"### trunk forward, {name}\n")
        out.append(
            table(
                rows, ["variant", "s/forward", "speed-up vs naive", "first call s", "max rel err"]
            )
        )
        out.append("")
    # a whole training step: the trunk is one part of it
    config = "DeepForest/faster_rcnn_fpn.py"
    fast, _ = build_from_config(config, device=args.device)
    slow, _ = build_from_config(
        config,
        ["model.backbone.bottom_up.mode=finetune", "model.backbone.bottom_up.norm=BN"],
        args.device,
    )
    slow.backbone.bottom_up.requires_grad_(False)
    slow.load_state_dict(fast.state_dict(), strict=False)  # same weights; BN counters differ
    slow_train = slow.train

    def train_keeping_naive_bn_eval(mode=True):
        slow_train(mode)
        slow.backbone.bottom_up.trunk.eval()
        return slow

    slow.train = train_keeping_naive_bn_eval
    batch = batches[0]
    med = interleaved(
        {"naive": train_step_fn(slow, batch), "freezedet": train_step_fn(fast, batch)},
        args.warmup,
        args.repeats,
        args.device,
    )
    rows = [
        ["naive", med["naive"], 1.0, saved_mb(slow, batch)],
        [
            "freezedet (default: fold+cl)",
            med["freezedet"],
            med["naive"] / med["freezedet"],
            saved_mb(fast, batch),
        ],
    ]
    out.append(f"### training step, {config}\n")
    out.append(table(rows, ["trunk", "s/step", "speed-up vs naive", "saved MB"]))
    print("\n".join(out))


if __name__ == "__main__":
    main()
