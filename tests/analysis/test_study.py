"""Transfer-study grid expansion, sharding, resume, and a 2-run toy study end to end (one
tools/train_net.py process per run on the synthetic COCO-json dataset, tiny iterations)."""

import csv
import json
import os
import subprocess
import sys

import pytest

from freezedet.analysis import study as study_mod
from freezedet.analysis.study import (
    expand_runs,
    load_study,
    parse_shard,
    run_command,
    run_study,
    schedule_overrides,
    select_shard,
)
from freezedet.analysis.transfer import PLOTS
from freezedet.model_zoo import configs_root

TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "transfer_study.py")


def _write_study(path, body):
    path.write_text("from freezedet.analysis.study import schedule_overrides\n" + body)
    return str(path)


GRID = """
study = dict(
    recipes={"fpn": "DeepForest/faster_rcnn_fpn.py",
             "cnas": "DeepForest/cascade_rcnn_nasfpn.py"},
    backbones=["effl0", "effl1"],
    modes=["frozen", "finetune"],
    datasets={"full": dict(overrides=[]),
              "25pct": dict(overrides=["dataloader.train.dataset.names=deepforest_train_25pct"],
                            only=dict(neck=["fpn"], mode=["frozen"]))},
    schedules={"60it": dict(overrides=schedule_overrides(60, warmup_iters=10))},
    seeds=[0, 1],
    overrides=["train.eval_period=30"],
)
"""


def test_expand_runs_grid_ids_overrides_only(tmp_path):
    study = load_study(_write_study(tmp_path / "s.py", GRID))
    runs = expand_runs(study)
    # 2 necks x 2 backbones x 2 modes x 2 seeds + the 25 % point: fpn x 2 backbones x frozen x 2
    assert len(runs) == 16 + 4
    ids = [r.run_id for r in runs]
    assert ids[0] == "fpn-effl0-frozen-full-60it-s0"
    assert ids[-1] == "fpn-effl1-frozen-25pct-60it-s1"  # the extra data point runs last
    assert all(r.axes["mode"] == "frozen" and r.axes["neck"] == "fpn" for r in runs[16:])
    run = next(r for r in runs if r.run_id == "cnas-effl1-finetune-full-60it-s1")
    assert run.recipe.endswith("configs/DeepForest/cascade_rcnn_nasfpn.py")
    assert run.top1 == 76.7  # the trunk record's
    assert run.meta == {"model": "tf_efficientnet_lite1"}
    assert run.overrides == [
        "trunk.name=effl1",
        "trunk.mode=finetune",
        "train.eval_period=30",
        "train.max_iter=60",
        "lr_multiplier.scheduler.num_updates=60",
        "lr_multiplier.scheduler.milestones=[53,56]",
        f"lr_multiplier.warmup_length={10 / 60}",
        "train.seed=1",
    ]
    assert [r.run_id for r in expand_runs(study)] == ids  # stable


@pytest.mark.parametrize(
    "name,n_runs",
    [
        ("deepforest_effl_lite.py", 64),
        ("deepforest_plainneck_capacity.py", 16),
        ("coco_proper_reuse.py", 18),
        ("deepforest_proper_reuse.py", 18),
        ("deepforest_few_labels.py", 36),
        ("deepforest_trunks.py", 24),
        ("deepforest_frozen_foundation.py", 6),  # 5 + the ViT arm's 2x check
    ],
)
def test_shipped_studies_expand(name, n_runs):
    """Every recipe a shipped study names exists (tests/test_configs.py instantiates them)."""
    runs = expand_runs(load_study(os.path.join(configs_root(), "studies", name)))
    assert len(runs) == n_runs
    assert all(os.path.isfile(r.recipe) for r in runs)


def test_shards_are_disjoint_and_cover(tmp_path):
    runs = expand_runs(load_study(_write_study(tmp_path / "s.py", GRID)))
    parts = [select_shard(runs, (i, 3)) for i in range(3)]
    ids = [r.run_id for p in parts for r in p]
    assert sorted(ids) == sorted(r.run_id for r in runs) and len(set(ids)) == len(ids)
    assert parse_shard("2/3") == (2, 3)
    for bad in ("3/3", "1", "a/b"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)


def test_bad_study_files_name_the_problem(tmp_path):
    bad_recipe = GRID.replace("cascade_rcnn_nasfpn.py", "no_such_recipe.py")
    with pytest.raises(FileNotFoundError, match="no_such_recipe.py"):
        expand_runs(load_study(_write_study(tmp_path / "a.py", bad_recipe)))
    # the old file-name templates name what replaced them
    templated = GRID.replace("faster_rcnn_fpn.py", "faster_rcnn_fpn_{backbone}_{mode}.py")
    with pytest.raises(ValueError, match="trunk.name="):
        load_study(_write_study(tmp_path / "t.py", templated))
    bad_only = GRID.replace('mode=["frozen"]', 'mode=["frozn"]')
    with pytest.raises(KeyError, match="frozn"):
        expand_runs(load_study(_write_study(tmp_path / "b.py", bad_only)))
    with pytest.raises(KeyError, match="recipes"):
        load_study(_write_study(tmp_path / "c.py", "study = dict(modes=['frozen'])\n"))


def test_schedule_overrides():
    assert schedule_overrides(90, warmup_iters=45) == [
        "train.max_iter=90",
        "lr_multiplier.scheduler.num_updates=90",
        "lr_multiplier.scheduler.milestones=[80,85]",
        "lr_multiplier.warmup_length=0.5",
    ]
    assert "lr_multiplier.scheduler.milestones=[16,17]" in schedule_overrides(18)
    with pytest.raises(ValueError, match="max_iter >= 18"):
        schedule_overrides(17)


def test_unfinished_run_is_resumed_not_restarted(tmp_path, monkeypatch):
    study = load_study(_write_study(tmp_path / "s.py", GRID))
    out = str(tmp_path / "out")
    first, second = expand_runs(study)[:2]
    # run 1 finished before; run 2 was interrupted after a checkpoint
    d1 = os.path.join(out, "runs", first.run_id)
    d2 = os.path.join(out, "runs", second.run_id)
    for d in (d1, d2):
        os.makedirs(d)
    for f in ("DONE", "eval_results.json"):
        open(os.path.join(d1, f), "w").write("{}")
    open(os.path.join(d2, "last_checkpoint"), "w").write("model_0000029.pth")
    calls = []
    monkeypatch.setattr(study_mod.subprocess, "call", lambda cmd, **kw: calls.append(cmd) or 1)
    summary = run_study(study, out, shard=(0, 10), log=lambda *a: None)  # runs 0 and 10
    assert summary["skipped"] == [first.run_id]
    assert len(calls) == 1 and "--resume" not in calls[0]  # run 10 starts fresh
    summary = run_study(study, out, shard=(1, 10), log=lambda *a: None)  # runs 1 and 11
    assert "--resume" in calls[1] and f"train.output_dir={d2}" in calls[1]
    assert summary["failed"] == [second.run_id, expand_runs(study)[11].run_id]
    manifest = json.load(open(os.path.join(d2, "manifest.json")))
    assert manifest["status"] == "failed" and manifest["returncode"] == 1 and manifest["resumed"]
    assert manifest["attempts"] == 1
    run_study(study, out, shard=(1, 10), log=lambda *a: None)
    assert json.load(open(os.path.join(d2, "manifest.json")))["attempts"] == 2


def test_toy_study_end_to_end(coco_config, tmp_path):
    """2 real runs (frozen / fine-tuned trunk, 4 iterations, evaluations at 2 and 4) + one run
    with a bad override: the failure is reported and the study goes on; table and the 6 PNGs
    are written; running again skips the finished runs."""
    spec = _write_study(
        tmp_path / "toy.py",
        f"""
study = dict(
    recipes={{"fpn": {coco_config!r}}},
    backbones=["effl0"],
    modes={{"frozen": dict(),
            "finetune": dict(),
            "broken": dict(mode="frozen", overrides=["train.no_such_key=1"])}},
    schedules={{"4it": dict(overrides=["train.max_iter=4"])}},
    overrides=["train.eval_period=2", "train.checkpointer.period=100", "train.device=cpu",
               "dataloader.train.total_batch_size=1", "train.init_checkpoint=",
               "model.roi_heads.box_predictor.test_score_thresh=0.0"],
)
""",
    )
    out = str(tmp_path / "out")
    cmd = [sys.executable, TOOL, spec, "--output-dir", out]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # one run failed
    assert "2 done, 0 skipped (finished before), 1 failed" in proc.stdout, proc.stdout
    broken = json.load(
        open(os.path.join(out, "runs", "fpn-effl0-broken-default-4it-s0", "manifest.json"))
    )
    assert broken["status"] == "failed" and broken["returncode"] != 0
    assert "no_such_key" in broken["log_tail"]

    rows = list(csv.DictReader(open(os.path.join(out, "table.csv"))))
    assert [r["mode"] for r in rows] == ["frozen", "finetune", "broken"]
    assert [r["status"] for r in rows] == ["done", "done", "failed"]
    frozen, finetune = rows[:2]
    for r in (frozen, finetune):
        assert 0.0 <= float(r["AP"]) <= 100.0 and r["max_iter"] == "4"
        assert float(r["s_per_iter"]) > 0 and float(r["top1"]) == 75.1
    # the trunk's parameters train only in the fine-tuned run
    assert int(frozen["params_total"]) == int(finetune["params_total"])
    assert int(finetune["params_trainable"]) == int(finetune["params_total"])
    assert int(frozen["params_trainable"]) < int(frozen["params_total"])
    table = json.load(open(os.path.join(out, "table.json")))
    assert [it for it, _ in table[0]["ap_curve"]] == [2, 4]
    for name in PLOTS:
        assert os.path.getsize(os.path.join(out, "plots", name + ".png")) > 10_000, name

    # again: the finished runs are skipped (no training), the broken one is retried
    first_mtime = os.path.getmtime(os.path.join(out, "runs", rows[0]["run_id"], "metrics.json"))
    summary = run_study(load_study(spec), out, log=lambda *a: None)
    assert summary == {
        "done": [],
        "skipped": [r["run_id"] for r in rows[:2]],
        "failed": [rows[2]["run_id"]],
    }
    assert first_mtime == os.path.getmtime(
        os.path.join(out, "runs", rows[0]["run_id"], "metrics.json")
    )


def test_a_recipe_that_fixes_its_trunk_is_a_neck_entry(tmp_path):
    spec = """
study = dict(
    recipes={"fpn": "DeepForest/faster_rcnn_fpn.py",
             "fpn+adapters": dict(
                 recipe="DeepForest/faster_rcnn_fpn_effl0_frozen_parallel_adapters.py",
                 fixed=dict(backbone="effl0", mode="frozen"))},
    backbones=["effl0", "effl1"],
    modes=["frozen", "finetune"],
)
"""
    runs = expand_runs(load_study(_write_study(tmp_path / "s.py", spec)))
    ids = [r.run_id for r in runs]
    assert ids == [
        "fpn-effl0-frozen-default-default-s0",
        "fpn-effl1-frozen-default-default-s0",
        "fpn-effl0-finetune-default-default-s0",
        "fpn-effl1-finetune-default-default-s0",
        "fpn_adapters-effl0-frozen-default-default-s0",
    ], ids
    assert runs[-1].recipe.endswith("DeepForest/faster_rcnn_fpn_effl0_frozen_parallel_adapters.py")
    assert runs[-1].overrides == ["train.seed=0"]  # no trunk.* overrides: its recipe fixes them
    assert runs[0].overrides == ["trunk.name=effl0", "trunk.mode=frozen", "train.seed=0"]
    old = spec.replace('"fpn+adapters": dict(', '"x": dict(').replace("fixed=dict(", "only=dict(")
    old = old.replace('modes=["frozen", "finetune"]', 'modes={"a": dict(recipe="frozen_x")}')
    with pytest.raises(ValueError, match="fixed=dict"):
        expand_runs(load_study(_write_study(tmp_path / "o.py", old)))


def test_deepforest_tables_share_their_common_runs():
    """The few-label and trunk studies reuse table 1's finished runs from one output directory:
    a run id they share must stand for the same training command."""

    def runs(name):
        return expand_runs(load_study(os.path.join(configs_root(), "studies", name)))

    table1 = {r.run_id: run_command(r, "out") for r in runs("deepforest_proper_reuse.py")}
    trunks = {r.run_id: run_command(r, "out") for r in runs("deepforest_trunks.py")}
    shared = [r for r in runs("deepforest_frozen_foundation.py") if r.run_id in trunks]
    assert len(shared) == 4  # Lite0 and MobileNetV2, frozen and fine-tuned, seed 0
    assert all(run_command(r, "out") == trunks[r.run_id] for r in shared)
    for name, n_shared in (("deepforest_few_labels.py", 12), ("deepforest_trunks.py", 6)):
        shared = [r for r in runs(name) if r.run_id in table1]
        assert len(shared) == n_shared, name
        for r in shared:
            assert run_command(r, "out") == table1[r.run_id], (name, r.run_id)
