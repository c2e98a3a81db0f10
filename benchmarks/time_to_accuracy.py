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

``--runs LABEL=RUN_DIR ...`` reports finished runs instead (a study's, different trunks or
recipes), the target being the final AP of ``--reference``; ``--clock median`` times runs that
shared the machine with a changing load by their median step time:

    python benchmarks/time_to_accuracy.py --runs finetune=RUNS/fpn-effl0-finetune-default-default-s0 \
        vit=RUNS/fpn-vits14focus-frozen-default-default-s0 --clock median --out /tmp/t2a
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


def read_curves(run_dir, clock="sum"):
    """Evaluations (iteration, minutes, AP, AP50), per-iteration losses and the final
    test-time-augmentation result (``bbox_TTA``, None without one) of a run.

    ``clock="sum"`` reads minutes from ``train_time_s`` (the sum of training step times, as
    measured); ``clock="median"`` puts iteration ``i`` at ``(i + 1)`` times the run's median
    ``s_per_iter``: for runs that shared the machine with a load that changed during the run
    (the median is what `freezedet.analysis.transfer` reports as a run's step time).
    """
    if clock not in ("sum", "median"):
        raise ValueError(f"clock={clock!r}: expected 'sum' or 'median'")
    evals, losses, clock_s, steps, tta = [], {}, {}, [], None
    path = os.path.join(run_dir, "metrics.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no metrics.json; is {run_dir} a training run directory?")
    with open(path) as f:
        for line in f:
            m = json.loads(line)
            if "train_time_s" in m:
                clock_s[m["iteration"]] = m["train_time_s"]
            if "s_per_iter" in m:
                steps.append(m["s_per_iter"])
            if "total_loss" in m:
                losses[m["iteration"]] = {k: m[k] for k in ("total_loss", *LOSSES) if k in m}
            if "bbox/AP" in m:
                evals.append({"iter": m["iteration"], "AP": m["bbox/AP"], "AP50": m["bbox/AP50"]})
            if "bbox_TTA/AP" in m:
                tta = {"iter": m["iteration"], "AP": m["bbox_TTA/AP"], "AP50": m["bbox_TTA/AP50"]}
    if clock == "median":
        if not steps:
            raise ValueError(f"{path}: clock='median' needs s_per_iter, which this run lacks")
        pace = sorted(steps)[len(steps) // 2]
        clock_s = {i: (i + 1) * pace for i in clock_s}
    minutes = {i: t / 60 for i, t in clock_s.items()}
    for e in evals:
        e["minutes"] = minutes[max(i for i in minutes if i <= e["iter"])]
    return {"evals": evals, "losses": losses, "minutes": max(minutes.values()), "tta": tta}


def minutes_to(evals, metric, value):
    hit = [e["minutes"] for e in evals if e[metric] >= value]
    return min(hit) if hit else None


def _fmt(v):
    return "—" if v is None else f"{v:.1f}"


def _name(label):
    return "fine-tuned" if label == "finetune" else label


def report(curves, thresholds, reference="finetune"):
    """A markdown table (one row per run) and, for every run, the minutes it takes to reach the
    final AP / AP50 of ``reference`` as a fraction of the reference run's minutes."""
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
    if reference in curves and len(curves) > 1:
        ref, ref_name = curves[reference], _name(reference)
        for metric in ("AP", "AP50"):
            target = ref["evals"][-1][metric]
            for v, c in curves.items():
                if v == reference:
                    continue
                t = minutes_to(c["evals"], metric, target)
                reaches = "never reaches" if t is None else f"reaches in {t / ref['minutes']:.2f}x"
                lines.append(
                    f"\n{_name(v)} {reaches} the {ref_name} final {metric} ({target:.1f}); the "
                    f"{ref_name} run trained {ref['minutes']:.1f} minutes"
                )
        ttas = [(v, c["tta"]) for v, c in curves.items() if c.get("tta")]
        if len(ttas) > 1:  # TTA is evaluated once, after training: final values only
            lines.append(
                "\nwith TTA (after training): "
                + ", ".join(f"{_name(v)} AP {t['AP']:.1f} / AP50 {t['AP50']:.1f}" for v, t in ttas)
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
    p.add_argument(
        "--runs",
        nargs="+",
        metavar="LABEL=RUN_DIR",
        help="report these finished run directories (e.g. a study's runs/<id>) instead of "
        "training the variants; --reference names the run whose final AP is the target",
    )
    p.add_argument("--reference", default="finetune", help="label of the target run")
    p.add_argument(
        "--clock",
        choices=("sum", "median"),
        default="sum",
        help="sum: training step times as measured; median: iterations x the run's median "
        "step time (runs that shared the machine with a changing load)",
    )
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("opts", nargs="*", help="key=value overrides for every variant")
    args = p.parse_args()
    if args.child:
        return train_variant(args)
    if args.runs:
        if args.opts:
            p.error(f"--runs reports finished runs; overrides {args.opts} would not be used")
        run_dirs = dict(parse_run(r, p) for r in args.runs)
    else:
        run_dirs = {v: os.path.join(args.out, "runs", v) for v in args.variants}
    for v in args.variants if not (args.collect_only or args.runs) else []:
        if os.path.isfile(os.path.join(args.out, "runs", v, "model_final.pth")):
            print(f"{v}: finished run found, not trained again", flush=True)
            continue
        cmd = [sys.executable, os.path.abspath(__file__), "--child", v, "--config", args.config]
        cmd += ["--out", args.out, "--threads", str(args.threads), "--seed", str(args.seed)]
        print(f"training {v} ...", flush=True)
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        subprocess.run(cmd + args.opts, check=True, cwd=REPO, env=env)
    if args.reference not in run_dirs:
        p.error(f"--reference {args.reference!r} is not one of the runs {sorted(run_dirs)}")
    curves = {v: read_curves(d, clock=args.clock) for v, d in run_dirs.items()}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "curves.json"), "w") as f:
        json.dump(curves, f, indent=1)
    title = "finished runs" if args.runs else args.config
    print(f"## Time to accuracy: {title}\n")
    print(f"command: `python {' '.join(sys.argv)}`  ")
    clock = "sum of step times" if args.clock == "sum" else "iterations x median step time"
    if args.runs:
        print(f"clock: {clock}; runs: " + ", ".join(f"{v} = {d}" for v, d in run_dirs.items()))
    else:
        print(
            f"torch {torch.__version__}, {args.threads} threads, seed {args.seed}; clock: {clock}"
        )
    print()
    print(report(curves, {"AP": args.ap, "AP50": args.ap50}, reference=args.reference))
    print(f"\nplots: {plot(curves, args.out)}")


def parse_run(spec, parser):
    label, sep, run_dir = spec.partition("=")
    if not sep or not label or not run_dir:
        parser.error(f"--runs {spec!r}: expected LABEL=RUN_DIR, e.g. finetune=output/runs/ft")
    if not os.path.isfile(os.path.join(run_dir, "metrics.json")):
        parser.error(f"--runs {spec!r}: {run_dir} has no metrics.json (not a finished run?)")
    return label, run_dir


if __name__ == "__main__":
    main()
