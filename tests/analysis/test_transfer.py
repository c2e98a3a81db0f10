"""Transfer-study statistics against hand-computed values; table/curve reading from run files."""

import json
import math
import os

import numpy as np
import pytest

from freezedet.analysis.transfer import (
    AP_FLOOR,
    EPS,
    bootstrap_ci,
    collect_run,
    is_converged,
    mode_gaps,
    write_mode_gaps,
    correlation_interval,
    fisher_z_ci,
    logit,
    pearson_r,
    permutation_pvalue,
    plot_study,
    read_metrics,
    top1_correlations,
    write_correlations,
    write_table,
)


def test_logit_hand_values():
    assert float(logit(0.5)) == 0.0
    assert float(logit(0.75)) == pytest.approx(math.log(3.0), abs=1e-12)
    assert float(logit(0.1)) == pytest.approx(-math.log(9.0), abs=1e-12)
    # ImageNet top-1 of EfficientNet-Lite0: log(0.751 / 0.249)
    assert float(logit(0.751)) == pytest.approx(1.103953, abs=1e-6)
    # clipped at EPS: AP 0 and 100 stay finite and symmetric
    lo, hi = logit([0.0, 1.0])
    assert lo == pytest.approx(math.log(EPS / (1 - EPS)), abs=1e-12)
    assert lo == pytest.approx(-6.906755, abs=1e-6)
    assert hi == pytest.approx(-lo, abs=1e-12)


def test_pearson_hand_values():
    # x = [1, 2, 3], y = [2, 4, 7]: sum dx*dy = 5, sum dx^2 = 2, sum dy^2 = 114 / 9
    assert pearson_r([1, 2, 3], [2, 4, 7]) == pytest.approx(5 / math.sqrt(2 * 114 / 9), abs=1e-12)
    assert pearson_r([1, 2, 3], [2, 4, 7]) == pytest.approx(0.993399, abs=1e-6)
    assert pearson_r([1, 2, 3, 4], [8, 6, 4, 2]) == pytest.approx(-1.0, abs=1e-12)
    assert math.isnan(pearson_r([1, 1, 1], [1, 2, 3]))
    # on log-odds, the way Kornblith et al. correlate: top-1 vs AP of three trunks
    top1 = logit(np.array([75.1, 76.7, 77.6]) / 100)
    ap = logit(np.array([10.0, 12.0, 11.0]) / 100)
    dx, dy = top1 - top1.mean(), ap - ap.mean()
    expected = (dx * dy).sum() / math.sqrt((dx**2).sum() * (dy**2).sum())
    assert pearson_r(top1, ap) == pytest.approx(expected, abs=1e-12)
    assert 0.3 < expected < 0.9  # a middling correlation, not a degenerate +-1


def test_bootstrap_ci():
    x, y = [1, 2, 3, 4, 5, 6], [1.1, 1.9, 3.2, 3.8, 5.3, 5.9]
    r = pearson_r(x, y)
    lo, hi = bootstrap_ci(x, y, n_boot=500, seed=0)
    assert lo <= r <= hi <= 1.0
    assert (lo, hi) == bootstrap_ci(x, y, n_boot=500, seed=0)  # seeded: reproducible
    assert (lo, hi) != bootstrap_ci(x, y, n_boot=500, seed=1)
    # perfectly linear data: every (non-degenerate) resample has r = 1
    assert bootstrap_ci([1, 2, 3, 4], [2, 4, 6, 8], n_boot=200) == pytest.approx((1.0, 1.0))
    # a known statistic, the mean of x = 1..6: its bootstrap distribution has standard error
    # sqrt(35 / 12) / sqrt(6) = 0.697, so the 95 % interval is about 3.5 -+ 1.96 * 0.697
    lo_m, hi_m = bootstrap_ci(x, y, stat=lambda a, b: float(a.mean()), n_boot=4000, seed=0)
    assert lo_m == pytest.approx(3.5 - 1.366, abs=0.2)
    assert hi_m == pytest.approx(3.5 + 1.366, abs=0.2)


def test_bootstrap_of_three_points_is_degenerate_so_it_is_not_reported():
    """Why the rule exists: with 3 trunks most resamples hold 2 distinct points (r = +-1)."""
    x, y = [1.0, 2.0, 3.0], [1.0, 3.0, 2.0]  # r = 0.5
    rng = np.random.RandomState(0)
    distinct = [len(set(rng.randint(0, 3, size=3))) for _ in range(2000)]
    assert np.mean([d == 2 for d in distinct]) > 0.6
    assert correlation_interval(x, y)[2] is None
    assert correlation_interval(x + [4.0], y + [4.0])[2] == "Fisher z"
    assert correlation_interval(x + [4.0, 5.0], y + [4.0, 6.0])[2] == "bootstrap"


def test_fisher_z_hand_values():
    # r = 0.5, n = 10: atanh(0.5) = 0.549306, se = 1 / sqrt(7), z_0.975 = 1.959964
    lo, hi = fisher_z_ci(0.5, 10)
    half = 1.959964 / math.sqrt(7)
    assert lo == pytest.approx(math.tanh(0.549306 - half), abs=1e-5)
    assert hi == pytest.approx(math.tanh(0.549306 + half), abs=1e-5)
    assert (round(lo, 4), round(hi, 4)) == (-0.1892, 0.8592)
    assert all(math.isnan(v) for v in fisher_z_ci(0.9, 3))


def test_permutation_pvalue_by_hand():
    # a perfect line: of the 6 orders only the identity (r = 1) and the reversal (r = -1)
    # reach |r| = 1
    assert permutation_pvalue([1, 2, 3], [2, 4, 6]) == (pytest.approx(2 / 6), "exact, 6 orders")
    # 1, 2, 3 vs 1, 3, 2: |r| = 0.5 for the identity and 4 of the other 5 orders; 1 for 2 orders
    p, _ = permutation_pvalue([1, 2, 3], [1, 3, 2])
    assert p == pytest.approx(6 / 6)
    x = np.arange(10.0)
    y = x + np.random.RandomState(0).randn(10)
    p, how = permutation_pvalue(x, y, n_perm=500)
    assert how == "500 random orders" and 0 < p < 0.01, p
    assert permutation_pvalue(x, y, n_perm=500) == (p, how)  # seeded


def test_ap_zero_is_left_out_not_clipped(tmp_path):
    top1 = {"l0": 75.1, "l1": 76.7, "l2": 77.6, "l3": 78.5}
    aps = {"l0": 0.0, "l1": 10.0, "l2": 12.0, "l3": 11.0}
    rows = [_row("a", b, "frozen", t, aps[b]) for b, t in top1.items()]
    (c,) = top1_correlations(rows)
    assert (c["n"], c["n_excluded"]) == (3, 1), c
    x = logit(np.array([76.7, 77.6, 78.5]) / 100)
    y = logit(np.array([10.0, 12.0, 11.0]) / 100)
    assert c["r"] == pytest.approx(pearson_r(x, y), abs=1e-12)
    # clipped instead, AP = 0 would decide r: the 4 points correlate strongly
    clipped = pearson_r(logit(np.array(list(top1.values())) / 100), logit([0.0, 0.1, 0.12, 0.11]))
    assert clipped > 0.8 and abs(c["r"] - clipped) > 0.3, (c["r"], clipped)
    assert AP_FLOOR == pytest.approx(100 * EPS)
    # one more AP = 0: 2 usable points, no r
    rows[1]["AP"] = 0.0
    (c,) = top1_correlations(rows)
    assert math.isnan(c["r"]) and c["n_excluded"] == 2 and c["ci_method"] is None
    text = open(write_correlations([c], str(tmp_path / "c.md"))).read()
    assert "| a | frozen | 2 | – | – (n = 2) | – | 2 |" in text, text


def test_read_metrics_last_line_wins(tmp_path):
    path = tmp_path / "metrics.json"
    lines = [
        {"iteration": 0, "s_per_iter": 1.0},
        {"iteration": 1, "s_per_iter": 2.0, "bbox/AP": 5.0},
        {"iteration": 1, "s_per_iter": 3.0},  # a resumed run logs iteration 1 again
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n{truncated")
    got = read_metrics(str(path))
    assert [m["iteration"] for m in got] == [0, 1]
    assert got[1] == {"iteration": 1, "s_per_iter": 3.0, "bbox/AP": 5.0}


def _row(neck, backbone, mode, top1, ap, seed="0"):
    return dict(
        run_id=f"{neck}-{backbone}-{mode}-full-x-s{seed}",
        neck=neck,
        backbone=backbone,
        mode=mode,
        dataset="full",
        schedule="x",
        seed=seed,
        top1=top1,
        status="done",
        AP=ap,
        AP50=2 * ap,
        AP75=ap / 2,
        APs=ap / 2,
        APm=ap,
        APl=None,
        params_trainable=1e6 * ap,
        train_time_s=60 * ap,
        ap_curve=[(5, ap / 2), (10, ap)],
    )


def test_table_and_plots_from_rows(tmp_path):
    rows = [
        _row(n, b, m, t, ap + (3 if m == "frozen" else 0) + (2 if n == "b" else 0))
        for n in ("a", "b")
        for m in ("frozen", "finetune")
        for (b, t), ap in zip((("l0", 75.1), ("l1", 76.7), ("l2", 77.6)), (10.0, 12.0, 13.0))
    ]
    rows.append(dict(rows[0], run_id="failed", status="failed", AP=None))
    paths = write_table(rows, str(tmp_path))
    md = open(paths[2]).read().splitlines()
    assert len(md) == 2 + len(rows)
    assert "| a | l0 | frozen | full | x | 0 | 75.1 | done | 13.0 |" in md[2]
    assert json.load(open(paths[1]))[0]["ap_curve"] == [[5, 6.5], [10, 13.0]]
    corr = {(c["neck"], c["mode"]): c for c in top1_correlations(rows)}
    assert set(corr) == {(n, m) for n in ("a", "b") for m in ("frozen", "finetune")}
    x = logit(np.array([75.1, 76.7, 77.6]) / 100)
    y = logit(np.array([13.0, 15.0, 16.0]) / 100)  # neck a, frozen
    assert corr[("a", "frozen")]["r"] == pytest.approx(pearson_r(x, y), abs=1e-12)
    assert corr[("a", "frozen")]["n"] == 3
    # three trunks: no interval (a bootstrap would be degenerate), an exact permutation p
    assert corr[("a", "frozen")]["ci_method"] is None
    assert corr[("a", "frozen")]["permutations"] == "exact, 6 orders"
    pngs = plot_study(rows, str(tmp_path / "plots"))
    assert len(pngs) == 6
    for p in pngs:
        assert os.path.getsize(p) > 10_000, p


def test_convergence_is_the_last_three_evaluations_within_one_ap():
    assert is_converged([(100, 5.0), (200, 12.0), (300, 12.9), (400, 12.0)]) is True
    assert is_converged([(100, 5.0), (200, 11.8), (300, 12.9), (400, 12.0)]) is False
    assert is_converged([(300, 12.9), (400, 12.0)]) is None


def test_mode_gaps_pair_seeds_and_name_missing_ones(tmp_path):
    rows = [
        _row("fpn", "l0", "frozen", 75.1, 12.0, seed=0),
        _row("fpn", "l0", "frozen", 75.1, 13.0, seed=1),
        _row("fpn", "l0", "finetune", 75.1, 16.0, seed=0),
        _row("fpn", "l0", "finetune", 75.1, 15.0, seed=1),
        _row("fpn", "l0", "finetune", 75.1, 14.0, seed=2),  # no frozen seed 2: not in the gap
        _row("nas", "l0", "frozen", 75.1, 9.0, seed=0),
        dict(_row("nas", "l0", "finetune", 75.1, 30.0, seed=0), status="failed"),
    ]
    gaps = {g["neck"]: g for g in mode_gaps(rows)}
    assert gaps["fpn"]["gap"] == {0: -4.0, 1: -2.0}
    assert gaps["fpn"]["finetune"] == {0: 16.0, 1: 15.0, 2: 14.0}
    assert gaps["nas"]["gap"] == {} and gaps["nas"]["finetune"] == {}
    md = open(write_mode_gaps(rows, str(tmp_path / "gaps.md"))).read()
    # gap mean -3.0, sample sd of (-4, -2) = 1.414
    assert "| fpn | l0 | full | x | 12.5 ± 0.7 (n=2) | 15.0 ± 1.0 (n=3) | -3.0 ± 1.4 (n=2) |" in md
    assert "s2: – / 14.0" in md
    assert "| nas | l0 | full | x | 9.0 (n=1) | – (n=0) | – (n=0) | s0: 9.0 / – |" in md


def test_collect_run_reads_tta_results_and_convergence(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps(dict(axes=dict(neck="fpn"), status="done")))
    results = dict(bbox=dict(AP=12.0, AP50=40.0), bbox_TTA=dict(AP=17.0, AP50=50.0, AP75=9.0))
    (d / "eval_results.json").write_text(json.dumps(results))
    (d / "DONE").write_text("")
    metrics = [dict(iteration=i, s_per_iter=1.0) for i in range(400)]
    # periodic evaluations at 100, 200, 300 and the final one (after training) at 300 again
    metrics += [{"iteration": i, "bbox/AP": ap} for i, ap in ((99, 5.0), (199, 11.5), (299, 12.0))]
    metrics += [{"iteration": 399, "bbox/AP": 12.2}, {"iteration": 400, "bbox/AP": 12.2}]
    (d / "metrics.json").write_text("\n".join(json.dumps(m) for m in metrics) + "\n")
    row = collect_run(str(d))
    assert (row["AP"], row["TTA_AP"], row["TTA_AP75"]) == (12.0, 17.0, 9.0)
    assert row["ap_curve"] == [(100, 5.0), (200, 11.5), (300, 12.0), (400, 12.2)]
    assert row["converged"] is True


def test_mode_gaps_without_finished_runs_say_so(tmp_path):
    rows = [dict(_row("fpn", "l0", "frozen", 75.1, 12.0), status="failed")]
    assert open(write_mode_gaps(rows, str(tmp_path / "g.md"))).read() == (
        "No finished frozen or finetune runs.\n"
    )
