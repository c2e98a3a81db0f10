"""Transfer-study statistics, tables and plots.

Kornblith, Shlens, Le, "Do Better ImageNet Models Transfer Better?" (CVPR 2019) correlate
transfer accuracy with ImageNet top-1 on log-odds: ``logit(p) = log(p / (1 - p))`` of both
accuracies, which spreads out values near 0 and 1 where equal gains are harder. Here the transfer
metric is box AP. :func:`collect_study` reads a study's run directories (see
:mod:`freezedet.analysis.study`) into one table and renders the plots.
"""

import csv
import json
import math
import os
import textwrap
from collections import OrderedDict, defaultdict
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from .study import AXES, expand_runs, is_finished, read_manifest, run_dir

__all__ = [
    "logit",
    "pearson_r",
    "bootstrap_ci",
    "fisher_z_ci",
    "permutation_pvalue",
    "correlation_interval",
    "top1_correlations",
    "write_correlations",
    "collect_from_table",
    "read_metrics",
    "collect_run",
    "collect_study",
    "is_converged",
    "mode_gaps",
    "write_mode_gaps",
    "write_table",
    "plot_study",
    "PLOTS",
]

# clip log-odds inputs to [EPS, 1 - EPS]: an AP of 0 (untrained) would otherwise be -inf
EPS = 1e-3
# a (seed-mean) AP below this, in AP points, is clipped by logit(): AP = 0 would enter the
# correlation at the clip value logit(EPS) = -6.9, a number set by EPS, far from every real
# point, and decide r alone. Such points are left out of the correlation and counted.
AP_FLOOR = 100 * EPS
# a percentile bootstrap of r needs enough points: with 3 (x, y) pairs most resamples hold 2
# distinct points (r = +-1) and the "interval" is an artefact
MIN_BOOTSTRAP = 5
# Fisher's z interval needs n - 3 >= 1
MIN_FISHER = 4
# permutation p-values enumerate all n! orders up to this n, else sample
MAX_EXACT_PERMUTATION = 8
AP_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
# test-time-augmentation results a recipe's `tta` adds to eval_results.json ("bbox_TTA")
TTA_KEYS = ("AP", "AP50", "AP75")
# "converged" (issue #13): the last three evaluations within this many AP points
CONVERGED_WITHIN = 1.0
PLOTS = (
    "ap_by_mode_neck",
    "ap_vs_top1_logit",
    "ap_vs_trainable_params",
    "ap_vs_train_time",
    "ap_vs_iteration",
    "ap_by_object_size",
)


def logit(p, eps: float = EPS):
    """Log-odds ``log(p / (1 - p))`` of fractions ``p`` in [0, 1] (pass AP / 100), with ``p``
    clipped to ``[eps, 1 - eps]`` so that 0 and 1 map to finite values (+-6.9 for 1e-3)."""
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
    return np.log(p / (1.0 - p))


def pearson_r(x, y) -> float:
    """Pearson's correlation coefficient; nan when either input is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    assert x.shape == y.shape and x.ndim == 1, f"shapes {x.shape} and {y.shape}: need equal 1-D"
    assert len(x) >= 2, f"need >= 2 points, got {len(x)}"
    dx, dy = x - x.mean(), y - y.mean()
    den = math.sqrt(float((dx * dx).sum() * (dy * dy).sum()))
    return float((dx * dy).sum() / den) if den > 0 else float("nan")


def bootstrap_ci(
    x,
    y,
    stat: Callable = pearson_r,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Tuple[float, float]:
    """Percentile bootstrap interval of ``stat(x, y)`` over resampled (x, y) pairs.

    Resamples where ``stat`` is undefined (all points equal) are dropped. With few points the
    interval is meaningless rather than wide: 3 pairs give resamples of mostly 2 distinct
    points, r = +-1; :func:`correlation_interval` uses it only from ``MIN_BOOTSTRAP`` points.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    rng = np.random.RandomState(seed)
    values = []
    for _ in range(n_boot):
        idx = rng.randint(0, len(x), size=len(x))
        v = stat(x[idx], y[idx])
        if np.isfinite(v):
            values.append(v)
    if not values:
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def fisher_z_ci(r: float, n: int, level: float = 0.95) -> Tuple[float, float]:
    """Fisher's z interval of a Pearson r from ``n`` points: ``tanh(atanh(r) -+ z / sqrt(n -
    3))``; assumes bivariate normal data. nan for ``n < 4`` or undefined r."""
    from statistics import NormalDist

    if n < MIN_FISHER or not np.isfinite(r):
        return float("nan"), float("nan")
    z = math.atanh(min(max(r, -1 + 1e-12), 1 - 1e-12))
    half = NormalDist().inv_cdf(0.5 + level / 2) / math.sqrt(n - 3)
    return math.tanh(z - half), math.tanh(z + half)


def permutation_pvalue(
    x, y, stat: Callable = pearson_r, *, n_perm: int = 10000, seed: int = 0
) -> Tuple[float, str]:
    """Two-sided permutation p-value of ``stat`` (H0: no association): the share of orderings
    of ``y`` with ``|stat| >= |stat(x, y)|``. Exact (all ``n!`` orders) for ``n <=
    MAX_EXACT_PERMUTATION``, else ``n_perm`` seeded random orders (+1 smoothing). With 3
    points there are 6 orders, so p >= 1/6.

    Returns:
        (p, description of the permutations used).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    obs = abs(stat(x, y))
    if not np.isfinite(obs):
        return float("nan"), "undefined"
    if len(x) <= MAX_EXACT_PERMUTATION:
        import itertools

        vals = [abs(stat(x, y[list(p)])) for p in itertools.permutations(range(len(y)))]
        hits = sum(v >= obs - 1e-12 for v in vals)
        return hits / len(vals), f"exact, {len(vals)} orders"
    rng = np.random.RandomState(seed)
    hits = sum(abs(stat(x, rng.permutation(y))) >= obs - 1e-12 for _ in range(n_perm))
    return (hits + 1) / (n_perm + 1), f"{n_perm} random orders"


def correlation_interval(x, y, *, seed: int = 0) -> Tuple[float, float, Optional[str]]:
    """The interval reported for a Pearson r of ``n`` points: a bootstrap interval for
    ``n >= MIN_BOOTSTRAP``, Fisher's z for ``MIN_FISHER <= n < MIN_BOOTSTRAP``, none below.

    Returns:
        (low, high, method) with method "bootstrap", "Fisher z" or None (nan bounds).
    """
    n = len(x)
    if n >= MIN_BOOTSTRAP:
        return (*bootstrap_ci(x, y, seed=seed), "bootstrap")
    if n >= MIN_FISHER:
        return (*fisher_z_ci(pearson_r(x, y), n), "Fisher z")
    return float("nan"), float("nan"), None


def read_metrics(path: str) -> List[dict]:
    """detectron2's ``metrics.json`` (one JSON object per line); for an iteration logged twice
    (a resumed run) the later line wins."""
    by_iter = OrderedDict()
    if not os.path.exists(path):
        return []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill
                continue
            by_iter.setdefault(d.get("iteration", -1), {}).update(d)
    return [by_iter[k] for k in sorted(by_iter)]


def _num(x) -> Optional[float]:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _parameter_counts(directory: str, manifest: dict) -> dict:
    """Total / trainable parameters of the run's model, built from its recipe + overrides
    (no weights loaded) and cached in ``parameters.json``."""
    cache = os.path.join(directory, "parameters.json")
    if os.path.exists(cache):
        with open(cache) as f:
            return json.load(f)
    from detectron2.config import instantiate

    from ..config import load_config
    from .params import parameter_table

    overrides = [o for o in manifest["overrides"] if not o.startswith("train.output_dir=")]
    cfg = load_config(manifest["recipe"], overrides)
    table = parameter_table(instantiate(cfg.model))
    counts = {
        "params_total": table["total"]["total"],
        "params_trainable": table["total"]["trainable"],
    }
    from ..utils.file_io import atomic_write_text

    atomic_write_text(json.dumps(counts), cache)
    return counts


def collect_run(directory: str) -> dict:
    """One table row: the run's axes, status, final box AP metrics, AP-vs-iteration curve,
    speed, memory and parameter counts."""
    manifest = read_manifest(directory)
    row = OrderedDict(run_id=os.path.basename(directory))
    for axis in AXES:
        row[axis] = manifest.get("axes", {}).get(axis)
    row["top1"] = manifest.get("top1")
    finished = is_finished(directory)
    row["status"] = "done" if finished else manifest.get("status", "missing")
    row["returncode"] = manifest.get("returncode")
    results = {}
    if finished:
        with open(os.path.join(directory, "eval_results.json")) as f:
            results = json.load(f)
    for k in AP_KEYS:
        row[k] = _num(results.get("bbox", {}).get(k))
    for k in TTA_KEYS:
        row[f"TTA_{k}"] = _num(results.get("bbox_TTA", {}).get(k))
    metrics = read_metrics(os.path.join(directory, "metrics.json"))
    train = [m for m in metrics if "s_per_iter" in m]
    s_iter = [m["s_per_iter"] for m in train]
    row["max_iter"] = (max(m["iteration"] for m in train) + 1) if train else None
    row["s_per_iter"] = float(np.median(s_iter)) if s_iter else None
    row["train_time_s"] = row["s_per_iter"] * row["max_iter"] if s_iter else None
    mem = [m["peak_mem_mb"] for m in metrics if "peak_mem_mb" in m]
    row["peak_mem_mb"] = max(mem) if mem else None
    row["wall_s"] = manifest.get("wall_s")  # of the last attempt
    row["attempts"] = manifest.get("attempts", 1 if manifest else None)
    if finished and manifest.get("recipe"):
        row.update(_parameter_counts(directory, manifest))
    else:
        row.update(params_total=None, params_trainable=None)
    # evaluations during training are logged at the iteration before the count they follow, the
    # final one (after training) at max_iter itself
    n = row["max_iter"] or 0
    curve = OrderedDict()  # the final evaluation repeats the last periodic one's iteration
    for m in metrics:
        if _num(m.get("bbox/AP")) is not None:
            curve[min(m["iteration"] + 1, n)] = m["bbox/AP"]
    row["ap_curve"] = list(curve.items())
    row["converged"] = is_converged(row["ap_curve"]) if finished else None
    return row


def is_converged(ap_curve: Sequence[Tuple[int, float]], within: float = CONVERGED_WITHIN):
    """Issue #13's criterion on an AP-vs-iteration curve: the last three evaluations lie within
    ``within`` AP points of each other (None with fewer than three)."""
    aps = [ap for _, ap in ap_curve][-3:]
    if len(aps) < 3:
        return None
    return bool(max(aps) - min(aps) <= within)


def _ap(v: Optional[float]) -> str:
    return "–" if v is None else f"{v:.1f}"


def _mean_sd(values: Sequence[float]) -> str:
    if not values:
        return "–"
    sd = f" ± {np.std(values, ddof=1):.1f}" if len(values) > 1 else ""
    return f"{np.mean(values):.1f}{sd}"


def mode_gaps(
    rows: Sequence[dict], a: str = "frozen", b: str = "finetune", metric: str = "AP"
) -> List[dict]:
    """Per (neck, backbone, dataset, schedule) with finished runs in modes ``a`` and ``b``: each
    mode's per-seed ``metric``, and the gap ``a - b`` per seed present in both (paired by seed),
    its mean and sample sd."""
    keys = ("neck", "backbone", "dataset", "schedule")
    by = defaultdict(dict)
    for r in rows:
        if r["status"] == "done" and r.get(metric) is not None and r["mode"] in (a, b):
            by[tuple(r[k] for k in keys)].setdefault(r["mode"], {})[r["seed"]] = r[metric]
    out = []
    for group, modes in by.items():
        pa, pb = modes.get(a, {}), modes.get(b, {})
        paired = sorted(set(pa) & set(pb))
        out.append(
            dict(
                zip(keys, group),
                metric=metric,
                **{a: dict(sorted(pa.items())), b: dict(sorted(pb.items()))},
                gap={s: pa[s] - pb[s] for s in paired},
            )
        )
    return out


def write_mode_gaps(rows: Sequence[dict], path: str, a: str = "frozen", b: str = "finetune"):
    """Markdown of :func:`mode_gaps` for plain AP and (where present) TTA AP."""
    lines = []
    for metric in ("AP", "AP50", "TTA_AP", "TTA_AP50"):
        gaps = mode_gaps(rows, a, b, metric)
        if not any(g[a] or g[b] for g in gaps):
            continue
        lines += [
            f"\n**{metric}**: {a} - {b} per detector (mean ± sd over seeds; per seed)\n",
            f"| neck | backbone | dataset | schedule | {a} | {b} | gap | per seed: {a} / {b} |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for g in gaps:
            seeds = sorted(set(g[a]) | set(g[b]))
            per = ", ".join(f"s{s}: {_ap(g[a].get(s))} / {_ap(g[b].get(s))}" for s in seeds)
            lines.append(
                f"| {g['neck']} | {g['backbone']} | {g['dataset']} | {g['schedule']} | "
                f"{_mean_sd(list(g[a].values()))} (n={len(g[a])}) | "
                f"{_mean_sd(list(g[b].values()))} (n={len(g[b])}) | "
                f"{_mean_sd(list(g['gap'].values()))} (n={len(g['gap'])}) | {per} |"
            )
    with open(path, "w") as f:
        f.write(
            "\n".join(lines).lstrip("\n") + "\n" if lines else f"No finished {a} or {b} runs.\n"
        )
    return path


def write_table(rows: Sequence[dict], out_dir: str) -> List[str]:
    """``table.csv``, ``table.json`` (with AP curves) and ``table.md`` under ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    cols = [k for k in rows[0] if k != "ap_curve"] if rows else []
    paths = [os.path.join(out_dir, f"table.{ext}") for ext in ("csv", "json", "md")]
    with open(paths[0], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    with open(paths[1], "w") as f:
        json.dump(list(rows), f, indent=1)

    def fmt(k, v):
        if v is None:
            return "–"
        if k.startswith("params"):
            return f"{v / 1e6:.2f}M"
        if isinstance(v, float):
            return f"{v:.1f}" if k not in ("s_per_iter",) else f"{v:.2f}"
        return str(v)

    md_cols = [c for c in cols if c not in ("returncode", "run_id")]
    lines = ["| " + " | ".join(md_cols) + " |", "|" + "---|" * len(md_cols)]
    lines += ["| " + " | ".join(fmt(c, r.get(c)) for c in md_cols) + " |" for r in rows]
    with open(paths[2], "w") as f:
        f.write("\n".join(lines) + "\n")
    return paths


def _mean_over_seeds(rows, keys=("neck", "backbone", "mode", "dataset", "schedule"), metric="AP"):
    """``{(key values): [metric per seed]}`` over finished rows."""
    groups = defaultdict(list)
    for r in rows:
        if r["status"] == "done" and r.get(metric) is not None:
            groups[tuple(r[k] for k in keys)].append(r[metric])
    return groups


def _ordered(rows, axis):
    seen = []
    for r in rows:
        if r[axis] not in seen:
            seen.append(r[axis])
    return seen


def _suptitle(fig, text: str, fontsize: int = 10):
    """A figure title wrapped to the figure's width (a one-panel figure is narrow)."""
    chars = int(fig.get_figwidth() * 72 / (0.6 * fontsize))
    fig.suptitle(textwrap.fill(text, max(chars, 20)), fontsize=fontsize)


def plot_study(rows: Sequence[dict], out_dir: str, title: str = "") -> List[str]:
    """The six study plots as PNGs under ``out_dir``; returns their paths.

    Bars and scatter plots use the first dataset and schedule (the main grid); the AP-vs-top-1
    plot labels one Pearson r per neck x mode on log-odds axes (interval and p-value as in
    :func:`top1_correlations`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    done = [r for r in rows if r["status"] == "done" and r.get("AP") is not None]
    if not done:
        return []
    main_ds, main_sched = _ordered(done, "dataset")[0], _ordered(done, "schedule")[0]
    necks, modes = _ordered(done, "neck"), _ordered(done, "mode")
    backbones, datasets = _ordered(done, "backbone"), _ordered(done, "dataset")
    colors = {n: plt.cm.tab10(i) for i, n in enumerate(necks)}
    markers = dict(zip(modes, "osD^v<>p*h"))
    suffix = f" ({title})" if title else ""
    paths = []

    def save(fig, name):
        path = os.path.join(out_dir, name + ".png")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)

    # 1. AP per mode x neck, one panel per backbone x dataset, seeds as dots + min-max bar
    fig, axes = plt.subplots(
        len(datasets),
        len(backbones),
        figsize=(4 * len(backbones), 3.3 * len(datasets)),
        squeeze=False,
        sharey=True,
    )
    width = 0.8 / len(necks)
    for i, ds in enumerate(datasets):
        for j, bb in enumerate(backbones):
            ax = axes[i][j]
            for k, neck in enumerate(necks):
                for m, mode in enumerate(modes):
                    aps = [
                        r["AP"]
                        for r in done
                        if (r["dataset"], r["backbone"], r["neck"], r["mode"], r["schedule"])
                        == (ds, bb, neck, mode, main_sched)
                    ]
                    if not aps:
                        continue
                    x = m + (k - (len(necks) - 1) / 2) * width
                    ax.bar(
                        x,
                        np.mean(aps),
                        width * 0.9,
                        color=colors[neck],
                        label=neck if m == 0 or not ax.get_legend_handles_labels()[1] else None,
                        yerr=[[np.mean(aps) - min(aps)], [max(aps) - np.mean(aps)]],
                        capsize=3,
                    )
                    ax.scatter([x] * len(aps), aps, color="k", s=8, zorder=3)
            ax.set_xticks(range(len(modes)))
            ax.set_xticklabels(modes)
            ax.set_title(f"{bb}, {ds}")
            ax.set_ylabel("box AP" if j == 0 else "")
            handles, labels = ax.get_legend_handles_labels()
            uniq = OrderedDict(zip(labels, handles))
            ax.legend(uniq.values(), uniq.keys(), fontsize=7)
    _suptitle(fig, "AP per mode x neck (bar: seed mean, dots: seeds)" + suffix)
    save(fig, PLOTS[0])

    # 2. AP vs ImageNet top-1 on log-odds axes, Pearson r + bootstrap CI per neck x mode
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    groups = _mean_over_seeds(
        [
            r
            for r in done
            if (r["dataset"], r["schedule"]) == (main_ds, main_sched) and r.get("top1") is not None
        ]
    )
    all_x, all_y = [], []
    for neck in necks:
        for mode in modes:
            pts = [
                (r_top1, np.mean(v))
                for (n, b, mo, _, _), v in groups.items()
                for r_top1 in [next(r["top1"] for r in done if r["backbone"] == b)]
                if (n, mo) == (neck, mode)
            ]
            if not pts:
                continue
            pts.sort()
            x = logit([p[0] / 100 for p in pts])
            y = logit([p[1] / 100 for p in pts])
            all_x += list(x)
            all_y += list(y)
            label = f"{neck}/{mode}"
            keep = [i for i, p in enumerate(pts) if p[1] >= AP_FLOOR]
            if len(keep) >= 3:
                r = pearson_r(x[keep], y[keep])
                lo, hi, method = correlation_interval(x[keep], y[keep])
                p, _ = permutation_pvalue(x[keep], y[keep])
                label += f": r={r:.2f}" + (f" [{lo:.2f}, {hi:.2f}]" if method else "")
                label += f", p={p:.2f}"
            ax.plot(
                x,
                y,
                marker=markers[mode],
                color=colors[neck],
                label=label,
                linestyle="-" if mode == modes[0] else "--",
            )
    _logit_ticks(ax, all_x, "x")
    _logit_ticks(ax, all_y, "y")
    ax.set_xlabel("ImageNet top-1 (%), log-odds axis")
    ax.set_ylabel(f"box AP (%), log-odds axis, {main_ds}")
    ax.set_title("AP vs ImageNet top-1 (r on logits, permutation p)" + suffix, fontsize=9)
    ax.legend(fontsize=7)
    save(fig, PLOTS[1])

    # 3-4. AP vs trainable parameters / training time
    main = [r for r in done if (r["dataset"], r["schedule"]) == (main_ds, main_sched)]
    for name, key, scale, xlabel in (
        (PLOTS[2], "params_trainable", 1e-6, "trainable parameters (M)"),
        (PLOTS[3], "train_time_s", 1 / 60, "training time (min, median s/iter x iterations)"),
    ):
        fig, ax = plt.subplots(figsize=(6, 4.3))
        for neck in necks:
            for mode in modes:
                pts = [
                    (r[key] * scale, r["AP"])
                    for r in main
                    if (r["neck"], r["mode"]) == (neck, mode) and r.get(key) is not None
                ]
                if pts:
                    ax.scatter(
                        *zip(*pts), color=colors[neck], marker=markers[mode], label=f"{neck}/{mode}"
                    )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"box AP, {main_ds}")
        ax.set_title(name.replace("_", " ") + suffix, fontsize=10)
        ax.legend(fontsize=7)
        save(fig, name)

    # 5. AP vs iteration (convergence), one panel per neck
    fig, axes = plt.subplots(1, len(necks), figsize=(5.5 * len(necks), 4), squeeze=False)
    styles = dict(zip(backbones, ["-", "--", ":", "-."] * 4))
    for ax, neck in zip(axes[0], necks):
        for r in main:
            if r["neck"] != neck or not r["ap_curve"]:
                continue
            it, ap = zip(*r["ap_curve"])
            mode_color = plt.cm.Set1(modes.index(r["mode"]))
            ax.plot(
                it,
                ap,
                linestyle=styles[r["backbone"]],
                marker=".",
                color=mode_color,
                label=f"{r['backbone']}/{r['mode']}/s{r['seed']}",
            )
        ax.set_xlabel("iteration")
        ax.set_ylabel("box AP")
        ax.set_title(f"{neck}, {main_ds}")
        ax.legend(fontsize=6)
    _suptitle(fig, "AP vs iteration (convergence)" + suffix)
    save(fig, PLOTS[4])

    # 6. AP by object size, seed means of (neck, mode), one panel per backbone
    fig, axes = plt.subplots(
        1, len(backbones), figsize=(4.5 * len(backbones), 3.8), squeeze=False, sharey=True
    )
    sizes = ("APs", "APm", "APl")
    configs = [(n, m) for n in necks for m in modes]
    for ax, bb in zip(axes[0], backbones):
        for s_i, size in enumerate(sizes):
            vals = []
            for n, m in configs:
                v = [
                    r[size]
                    for r in main
                    if (r["backbone"], r["neck"], r["mode"]) == (bb, n, m)
                    and r.get(size) is not None
                ]
                vals.append(np.mean(v) if v else np.nan)
            x = np.arange(len(configs)) + (s_i - 1) * 0.27
            ax.bar(x, vals, 0.25, label=size)
        ax.set_xticks(range(len(configs)))
        ax.set_xticklabels([f"{n}\n{m}" for n, m in configs], fontsize=7, rotation=30)
        ax.set_title(f"{bb}, {main_ds}")
        ax.legend(fontsize=7)
    _suptitle(fig, "AP by object size (COCO areas; missing bar: no objects of that size)" + suffix)
    save(fig, PLOTS[5])
    return paths


def _logit_ticks(ax, values, which: str):
    """Ticks at round percentages on a log-odds axis."""
    if not values:
        return
    lo, hi = min(values), max(values)
    cands = [0.1, 0.2, 0.5, 1, 1.5, 2, 3, 4, 5, 7, 10, 15, 20, 30, 40, 50, 60, 70, 75, 80, 85]
    cands += [90, 95, 98, 99]
    pad = max(0.05 * (hi - lo), 0.05)
    ticks = [(float(logit(c / 100)), c) for c in cands if lo - pad <= logit(c / 100) <= hi + pad]
    if len(ticks) < 2:
        ticks = [(v, 100 / (1 + math.exp(-v))) for v in np.linspace(lo, hi, 4)]
    pos, labels = zip(*ticks)
    getattr(ax, f"set_{which}ticks")(pos)
    getattr(ax, f"set_{which}ticklabels")([f"{c:.3g}" for c in labels])


def top1_correlations(rows: Sequence[dict], seed: int = 0) -> List[dict]:
    """Pearson r between logit(ImageNet top-1) and logit(AP) over backbones (seed-mean AP), per
    (dataset, schedule, neck, mode) with >= 3 backbones, with the interval of
    :func:`correlation_interval` and a permutation p-value. Backbones whose seed-mean AP is
    below ``AP_FLOOR`` are left out and counted (``n_excluded``); with fewer than 3 left, r is
    nan."""
    groups = _mean_over_seeds([r for r in rows if r.get("top1") is not None])
    top1 = {r["backbone"]: r["top1"] for r in rows if r.get("top1") is not None}
    series = defaultdict(list)
    for (neck, backbone, mode, dataset, schedule), aps in groups.items():
        series[(dataset, schedule, neck, mode)].append((top1[backbone], float(np.mean(aps))))
    out = []
    for (dataset, schedule, neck, mode), pts in series.items():
        if len(pts) < 3:
            continue
        kept = [(t, ap) for t, ap in pts if ap >= AP_FLOOR]
        row = dict(dataset=dataset, schedule=schedule, neck=neck, mode=mode, n=len(kept))
        row.update(n_excluded=len(pts) - len(kept), r=float("nan"), ci_low=float("nan"))
        row.update(ci_high=float("nan"), ci_method=None, p_perm=float("nan"), permutations="")
        if len(kept) >= 3:  # else: too few points with a usable AP, no r
            x = logit([t / 100 for t, _ in kept])
            y = logit([ap / 100 for _, ap in kept])
            row["ci_low"], row["ci_high"], row["ci_method"] = correlation_interval(x, y, seed=seed)
            row["p_perm"], row["permutations"] = permutation_pvalue(x, y, seed=seed)
            row["r"] = pearson_r(x, y)
        out.append(row)
    return out


def write_correlations(corr: Sequence[dict], path: str) -> str:
    """``correlations.md``: r, its interval (and how it was computed) and the permutation p."""
    lines = [
        "Pearson r of logit(box AP) vs logit(ImageNet top-1) over backbones (AP: seed mean). "
        f"Interval: percentile bootstrap (2000 resamples) with >= {MIN_BOOTSTRAP} backbones, "
        f"Fisher z with {MIN_FISHER}, none with fewer (a bootstrap of 3 points is degenerate). "
        "p: two-sided permutation test of r = 0 (exact: with 3 backbones there are 6 orders, "
        f"so p >= 1/6 = 0.17). Backbones with a seed-mean AP below {AP_FLOOR:g} are left out "
        f"and counted: logit() clips AP / 100 at {EPS}, so AP = 0 would sit at -6.9, a value "
        "set by the clip, and decide r.",
        "",
        "| dataset | schedule | neck | mode | backbones | Pearson r (logits) | 95 % CI "
        f"| permutation p | left out (AP < {AP_FLOOR:g}) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in corr:
        ci = (
            f"[{c['ci_low']:.2f}, {c['ci_high']:.2f}] ({c['ci_method']})"
            if c["ci_method"]
            else f"– (n = {c['n']})"
        )
        r, p = "–", "–"
        if np.isfinite(c["r"]):
            r, p = f"{c['r']:.2f}", f"{c['p_perm']:.2f} ({c['permutations']})"
        lines.append(
            f"| {c['dataset']} | {c['schedule']} | {c['neck']} | {c['mode']} | {c['n']} | "
            f"{r} | {ci} | {p} | {c['n_excluded']} |"
        )
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def collect_study(study: dict, output_dir: str) -> List[str]:
    """Table (CSV/JSON/markdown) and plots of every run of ``study`` under ``output_dir``
    (finished, failed or not yet run), e.g. a directory shared by several machines."""
    rows = [collect_run(run_dir(output_dir, run)) for run in expand_runs(study)]
    for row, run in zip(rows, expand_runs(study)):  # runs not started have no manifest yet
        row.update({a: run.axes[a] for a in AXES}, top1=run.top1)
    paths = write_table(rows, output_dir)
    paths.append(
        write_correlations(top1_correlations(rows), os.path.join(output_dir, "correlations.md"))
    )
    paths.append(write_mode_gaps(rows, os.path.join(output_dir, "gaps.md")))
    name = os.path.splitext(os.path.basename(study.get("_path", "")))[0]
    paths += plot_study(rows, os.path.join(output_dir, "plots"), title=name)
    return paths


def collect_from_table(table_json: str, output_dir: str, title: str = "") -> List[str]:
    """``correlations.md`` and the plots from a study's ``table.json`` (e.g. a committed one,
    when the run directories are gone)."""
    with open(table_json) as f:
        rows = json.load(f)
    os.makedirs(output_dir, exist_ok=True)
    paths = [
        write_correlations(top1_correlations(rows), os.path.join(output_dir, "correlations.md")),
        write_mode_gaps(rows, os.path.join(output_dir, "gaps.md")),
    ]
    return paths + plot_study(rows, os.path.join(output_dir, "plots"), title=title)
