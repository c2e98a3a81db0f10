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
