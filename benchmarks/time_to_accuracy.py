"""Time to accuracy: the same detector trained three ways, val AP against training wall-clock.

Variants (same recipe, seed, schedule and evaluation every 10 % of it):
  frozen     freezedet's frozen trunk: FrozenBN, no autograd graph, BN folded, channels_last
             and the recipe's feature cache (each (tile, view) through the trunk once)
  naive      the trunk in "finetune" mode with every trunk parameter ``requires_grad=False``
             (what ``requires_grad_(False)`` alone gives: same weights and frozen statistics, no
             fast path, no cache)
  finetune   the trunk trains (FrozenBN statistics, as the recipe's finetune mode)

Each variant runs in its own process, one after the other, with the same thread count. The
clock is ``train_time_s`` (sum of training step times; evaluation and checkpoint writing
excluded, they are the same for all variants). Printed: minutes to reach each AP / AP50
threshold, final AP, and the ratio the frozen path should buy: frozen's minutes to reach the
fine-tuned model's final AP over the fine-tuned run's minutes. When the recipe has a ``tta`` node
(test-time augmentation, evaluated once after training), each variant's final TTA AP / AP50 is
printed beside its plain one. Learning-curve plots (val AP vs iteration and vs minutes, training
losses) and ``curves.json`` go to ``--out``.

    python benchmarks/time_to_accuracy.py train.max_iter=450   # the demo schedule of the recipe
"""

import argparse
import json
import os
import subprocess
import sys

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = ("frozen", "naive", "finetune")
LOSSES = ("loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc")


def naive_frozen(model):
    """``requires_grad_(False)`` on the trunk of a model built with a "finetune" trunk."""
    model.backbone.bottom_up.requires_grad_(False)
    return model


def variant_overrides(variant):
    trunk = "model.backbone.bottom_up"
    if variant == "frozen":
        return []
    return [f"{trunk}.mode=finetune", f"{trunk}.norm=FrozenBN", f"{trunk}.feature_cache=null"]


def train_variant(args):
    """Child process: train one variant with freezedet's training path."""
    from detectron2.config import LazyCall as L
    from detectron2.engine import default_setup
    from detectron2.utils.logger import setup_logger

    import freezedet  # noqa: F401
    from freezedet.config import resolve_config_file
    from freezedet.engine import argument_parser, do_train, load_config

    torch.set_num_threads(args.threads)
    out = os.path.join(args.out, "runs", args.child)
    overrides = [
        f"train.output_dir={out}",
        f"train.seed={args.seed}",
        *variant_overrides(args.child),
        *args.opts,
    ]
    cfg = load_config(args.config, overrides)
    cfg.train.eval_period = max(1, cfg.train.max_iter // 10)
    cfg.train.checkpointer.period = cfg.train.max_iter  # only the final model
    if args.child == "naive":
        cfg.model = L(naive_frozen)(model=cfg.model)
    # a path: default_setup copies the config file into the output dir
    config_file = resolve_config_file(args.config)
    train_args = argument_parser().parse_args(["--config-file", config_file, "--resume"])
    default_setup(cfg, train_args)
    setup_logger(out, name="freezedet")
    do_train(train_args, cfg)


def read_curves(run_dir):
    """Evaluations (iteration, minutes, AP, AP50), per-iteration losses and the final
    test-time-augmentation result (``bbox_TTA``, None without one) of a run."""
    evals, losses, clock, tta = [], {}, {}, None
    with open(os.path.join(run_dir, "metrics.json")) as f:
        for line in f:
            m = json.loads(line)
            if "train_time_s" in m:
                clock[m["iteration"]] = m["train_time_s"] / 60
            if "total_loss" in m:
                losses[m["iteration"]] = {k: m[k] for k in ("total_loss", *LOSSES) if k in m}
            if "bbox/AP" in m:
                evals.append({"iter": m["iteration"], "AP": m["bbox/AP"], "AP50": m["bbox/AP50"]})
            if "bbox_TTA/AP" in m:
                tta = {"iter": m["iteration"], "AP": m["bbox_TTA/AP"], "AP50": m["bbox_TTA/AP50"]}
    for e in evals:
        e["minutes"] = clock[max(i for i in clock if i <= e["iter"])]
    return {"evals": evals, "losses": losses, "minutes": max(clock.values()), "tta": tta}


def minutes_to(evals, metric, value):
    hit = [e["minutes"] for e in evals if e[metric] >= value]
    return min(hit) if hit else None


def _fmt(v):
    return "—" if v is None else f"{v:.1f}"


def report(curves, thresholds):
    metrics = [("AP", t) for t in thresholds["AP"]] + [("AP50", t) for t in thresholds["AP50"]]
    with_tta = any(c.get("tta") for c in curves.values())
    head = ["variant", "min/iter·1000", "train min", "final AP", "final AP50"]
    head += ["final AP (TTA)", "final AP50 (TTA)"] if with_tta else []
    head += [f"min to {m} {t:g}" for m, t in metrics]
    rows = []
    for v, c in curves.items():
        last, tta = c["evals"][-1], c.get("tta") or {}
        per_k = 1000 * c["minutes"] / (last["iter"] + 1)
        row = [v, f"{per_k:.1f}", f"{c['minutes']:.1f}", f"{last['AP']:.1f}", f"{last['AP50']:.1f}"]
        row += [_fmt(tta.get("AP")), _fmt(tta.get("AP50"))] if with_tta else []
        rows.append(row + [_fmt(minutes_to(c["evals"], m, t)) for m, t in metrics])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    if "frozen" in curves and "finetune" in curves:
        ft = curves["finetune"]
        for metric in ("AP", "AP50"):
            target = ft["evals"][-1][metric]
            t = minutes_to(curves["frozen"]["evals"], metric, target)
            reaches = "never reaches" if t is None else f"reaches in {t / ft['minutes']:.2f}x"
            lines.append(
                f"\nfrozen {reaches} the fine-tuned final {metric} ({target:.1f}); the fine-tuned "
                f"run trained {ft['minutes']:.1f} minutes"
            )
        fz_tta, ft_tta = curves["frozen"].get("tta"), ft.get("tta")
        if fz_tta and ft_tta:  # TTA is evaluated once, after training: final values only
            lines.append(
                f"\nwith TTA (after training): frozen AP {fz_tta['AP']:.1f} / AP50 "
                f"{fz_tta['AP50']:.1f}, fine-tuned AP {ft_tta['AP']:.1f} / AP50 "
                f"{ft_tta['AP50']:.1f}"
            )
    return "\n".join(lines)


def plot(curves, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for v, c in curves.items():
        it = [e["iter"] for e in c["evals"]]
        axes[0].plot(it, [e["AP50"] for e in c["evals"]], "o-", label=f"{v} AP50")
        axes[0].plot(it, [e["AP"] for e in c["evals"]], "s--", label=f"{v} AP")
        mins = [e["minutes"] for e in c["evals"]]
        axes[1].plot(mins, [e["AP50"] for e in c["evals"]], "o-", label=f"{v} AP50")
        axes[1].plot(mins, [e["AP"] for e in c["evals"]], "s--", label=f"{v} AP")
        iters = sorted(c["losses"])
        axes[2].plot(iters, [c["losses"][i]["total_loss"] for i in iters], label=v)
    axes[0].set(xlabel="iteration", ylabel="val box AP / AP50", title="val AP vs iteration")
    axes[1].set(xlabel="training minutes", title="val AP vs training wall-clock")
    axes[2].set(xlabel="iteration", ylabel="total loss (20-it median)", title="training loss")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(out, "learning_curves.png")
    fig.savefig(path, dpi=110)
    return path


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default="DeepForest/faster_rcnn_fpn_p2.py")
    p.add_argument("--out", default=os.path.join(REPO, "output", "time_to_accuracy"))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ap", nargs="+", type=float, default=[10, 15, 20])
    p.add_argument("--ap50", nargs="+", type=float, default=[30, 40, 50])
    p.add_argument("--collect-only", action="store_true", help="only report finished runs")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("opts", nargs="*", help="key=value overrides for every variant")
    args = p.parse_args()
    if args.child:
        return train_variant(args)
    for v in args.variants if not args.collect_only else []:
        if os.path.isfile(os.path.join(args.out, "runs", v, "model_final.pth")):
            print(f"{v}: finished run found, not trained again", flush=True)
            continue
        cmd = [sys.executable, os.path.abspath(__file__), "--child", v, "--config", args.config]
        cmd += ["--out", args.out, "--threads", str(args.threads), "--seed", str(args.seed)]
        print(f"training {v} ...", flush=True)
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        subprocess.run(cmd + args.opts, check=True, cwd=REPO, env=env)
    curves = {v: read_curves(os.path.join(args.out, "runs", v)) for v in args.variants}
    with open(os.path.join(args.out, "curves.json"), "w") as f:
        json.dump(curves, f, indent=1)
    print(f"## Time to accuracy: {args.config}\n")
    print(f"command: `python {' '.join(sys.argv)}`  ")
    print(f"torch {torch.__version__}, {args.threads} threads, seed {args.seed}\n")
    print(report(curves, {"AP": args.ap, "AP50": args.ap50}))
    print(f"\nplots: {plot(curves, args.out)}")


if __name__ == "__main__":
    main()
