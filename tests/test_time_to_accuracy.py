"""benchmarks/time_to_accuracy.py reads a run's metrics.json and reports what it holds."""

import importlib.util
import json
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tta_bench():
    path = os.path.join(REPO, "benchmarks", "time_to_accuracy.py")
    spec = importlib.util.spec_from_file_location("time_to_accuracy", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_run(run_dir, aps, seconds_per_iter, tta=None):
    """A metrics.json as freezedet's trainer writes it: losses and clock every iteration,
    an evaluation every 10 iterations, the TTA evaluation once at the end."""
    os.makedirs(run_dir)
    rows = []
    for it in range(len(aps) * 10):
        rows.append(
            {"iteration": it, "total_loss": 1.0, "train_time_s": (it + 1) * seconds_per_iter}
        )
        if it % 10 == 9:
            ap = aps[it // 10]
            rows.append({"iteration": it, "bbox/AP": ap, "bbox/AP50": 3 * ap})
    if tta is not None:
        rows[-1].update({"bbox_TTA/AP": tta, "bbox_TTA/AP50": 3 * tta})
    with open(os.path.join(run_dir, "metrics.json"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return run_dir


def test_report_times_thresholds_and_prints_tta_beside_plain(tta_bench, tmp_path):
    frozen = tta_bench.read_curves(_write_run(str(tmp_path / "f"), [5, 12, 16], 6.0, tta=19.0))
    ft = tta_bench.read_curves(_write_run(str(tmp_path / "t"), [6, 10, 15], 18.0, tta=21.0))
    assert frozen["tta"] == {"iter": 29, "AP": 19.0, "AP50": 57.0}
    assert [e["minutes"] for e in frozen["evals"]] == [1.0, 2.0, 3.0]
    text = tta_bench.report({"frozen": frozen, "finetune": ft}, {"AP": [10, 20], "AP50": [30]})
    header, _, row_frozen, row_ft = text.splitlines()[:4]
    assert "final AP (TTA)" in header
    cells = [c.strip() for c in row_frozen.strip("| ").split("|")]
    # 3 min for 30 iterations; final 16 / 48, TTA 19 / 57; AP 10 at 2.0 min, AP 20 never,
    # AP50 30 at 2.0 min
    assert cells == ["frozen", "100.0", "3.0", "16.0", "48.0", "19.0", "57.0", "2.0", "—", "2.0"]
    assert [c.strip() for c in row_ft.split("|")][6:8] == ["21.0", "63.0"]
    # fine-tuned final AP 15 is reached by frozen (16) at 3.0 of the fine-tuned run's 9.0 minutes
    assert (
        "frozen reaches in 0.33x the fine-tuned final AP (15.0); the fine-tuned run trained 9.0"
        in text
    )
    ft["evals"][-1]["AP"] = 17.0
    text = tta_bench.report({"frozen": frozen, "finetune": ft}, {"AP": [10], "AP50": []})
    assert "frozen never reaches the fine-tuned final AP (17.0)" in text
    assert "with TTA (after training): frozen AP 19.0 / AP50 57.0, fine-tuned AP 21.0" in text


def test_report_without_tta_has_no_tta_columns(tta_bench, tmp_path):
    run = tta_bench.read_curves(_write_run(str(tmp_path / "f"), [5, 12], 6.0))
    assert run["tta"] is None
    text = tta_bench.report({"frozen": run}, {"AP": [10], "AP50": []})
    assert "TTA" not in text and "| frozen | 100.0 | 2.0 | 12.0 | 36.0 | 2.0 |" in text


def _add_step_times(run_dir, seconds):
    """Add ``s_per_iter`` to every loss row (the trainer logs the step time there)."""
    path = os.path.join(run_dir, "metrics.json")
    rows = [json.loads(line) for line in open(path)]
    steps = iter(seconds)
    for r in rows:
        if "total_loss" in r:
            r["s_per_iter"] = next(steps)
    with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


def test_median_clock_ignores_a_load_spike_the_sum_keeps(tta_bench, tmp_path):
    run = _write_run(str(tmp_path / "r"), [5, 12, 16], 6.0)
    # 30 steps of 6 s, except 5 slow ones (a second job took the core): the sum (180 s) is kept
    # by train_time_s as written; the median pace is 6 s whatever the spike
    _add_step_times(run, [6.0] * 25 + [60.0] * 5)
    summed = tta_bench.read_curves(run)
    median = tta_bench.read_curves(run, clock="median")
    assert [e["minutes"] for e in summed["evals"]] == [1.0, 2.0, 3.0]
    assert [e["minutes"] for e in median["evals"]] == [1.0, 2.0, 3.0]
    _add_step_times(run, [60.0] * 5 + [6.0] * 25)
    rows = [json.loads(line) for line in open(os.path.join(run, "metrics.json"))]
    t = 0.0
    for r in rows:  # train_time_s as the trainer would have summed these step times
        if "total_loss" in r:
            t += r["s_per_iter"]
            r["train_time_s"] = t
    with open(os.path.join(run, "metrics.json"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    assert tta_bench.read_curves(run)["evals"][0]["minutes"] == 5.5  # 5 x 60 + 5 x 6 s
    assert tta_bench.read_curves(run, clock="median")["evals"][0]["minutes"] == 1.0
    with pytest.raises(ValueError, match="clock='wall'"):
        tta_bench.read_curves(run, clock="wall")


def test_report_against_any_reference_run(tta_bench, tmp_path):
    ft = tta_bench.read_curves(_write_run(str(tmp_path / "t"), [6, 10, 15], 18.0, tta=21.0))
    vit = tta_bench.read_curves(_write_run(str(tmp_path / "v"), [9, 16, 18], 3.0, tta=22.0))
    mnv2 = tta_bench.read_curves(_write_run(str(tmp_path / "m"), [4, 8, 11], 3.0))
    text = tta_bench.report(
        {"finetune": ft, "vits14": vit, "mnv2": mnv2}, {"AP": [], "AP50": []}, reference="finetune"
    )
    # the fine-tuned final AP 15 is reached by the ViT at its 2nd evaluation: 1.0 of 9.0 minutes
    assert "vits14 reaches in 0.11x the fine-tuned final AP (15.0); the fine-tuned run" in text
    assert "mnv2 never reaches the fine-tuned final AP (15.0)" in text
    assert "with TTA (after training): fine-tuned AP 21.0 / AP50 63.0, vits14 AP 22.0" in text
    text = tta_bench.report({"finetune": ft, "vits14": vit}, {"AP": [], "AP50": []}, "vits14")
    assert "fine-tuned never reaches the vits14 final AP (18.0); the vits14 run trained 1.5" in text


def test_runs_mode_reports_finished_run_directories(tta_bench, tmp_path):
    import subprocess
    import sys

    ft = _write_run(str(tmp_path / "t"), [6, 10, 15], 18.0)
    vit = _write_run(str(tmp_path / "v"), [9, 16, 18], 3.0)
    script = os.path.join(REPO, "benchmarks", "time_to_accuracy.py")
    out = str(tmp_path / "out")
    cmd = [sys.executable, script, "--runs", f"finetune={ft}", f"vit={vit}", "--out", out]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "vit reaches in 0.11x the fine-tuned final AP (15.0)" in res.stdout
    assert os.path.isfile(os.path.join(out, "learning_curves.png"))
    bad = subprocess.run(cmd[:3] + [f"vit={tmp_path}"], capture_output=True, text=True)
    assert bad.returncode == 2 and "has no metrics.json" in bad.stderr
    bad = subprocess.run(cmd + ["--reference", "x"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--reference 'x' is not one of the runs" in bad.stderr
