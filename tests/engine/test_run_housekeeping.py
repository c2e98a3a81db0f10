"""Tidy runs: max_to_keep across --resume, metrics.json without repeated iterations after a
resume, one INFO line for a trunk checkpoint's expected missing keys, and the data loader's
worker processes ending with a trainer stopped by SIGTERM / SIGINT."""

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

from freezedet.checkpoint import AtomicDetectionCheckpointer
from freezedet.engine import argument_parser, main
from freezedet.model_zoo import get_config_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = get_config_file("DeepForest/faster_rcnn_fpn.py")


def _train(synthetic_run_opts, out, max_iter, resume):
    opts = [
        "train.init_checkpoint=",
        f"train.output_dir={out}",
        "train.log_period=1",
        "train.seed=0",
        f"train.max_iter={max_iter}",
        "train.checkpointer.period=1",
        "train.checkpointer.max_to_keep=2",
        "train.eval_period=0",
        *synthetic_run_opts,
    ]
    flags = ["--resume"] if resume else []
    main(argument_parser().parse_args([*flags, "--config-file", CONFIG, *opts]))


def test_resume_keeps_max_to_keep_checkpoints_and_unrepeated_metrics(synthetic_run_opts, tmp_path):
    out = tmp_path / "run"
    _train(synthetic_run_opts, str(out), 3, resume=False)
    assert sorted(f for f in os.listdir(out) if f.endswith(".pth")) == [
        "model_0000001.pth",
        "model_0000002.pth",
        "model_final.pth",
    ]
    # as a run killed after writing iterations 3 and 4 but before their checkpoints
    with open(out / "metrics.json", "a") as f:
        for it in (3, 4):
            f.write(json.dumps({"iteration": it, "total_loss": 99.0}) + "\n")
    _train(synthetic_run_opts, str(out), 5, resume=True)
    # detectron2 counts only its own saves: model_0000001/2 of the first run stayed forever
    assert sorted(f for f in os.listdir(out) if f.endswith(".pth")) == [
        "model_0000003.pth",
        "model_0000004.pth",
        "model_final.pth",
    ]
    with open(out / "metrics.json") as f:
        lines = [json.loads(line) for line in f]
    trained = [m["iteration"] for m in lines if "total_loss" in m]
    assert trained == [0, 1, 2, 3, 4], trained
    assert all(m.get("total_loss") != 99.0 for m in lines)


class _Detector(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.trunk = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.backbone.neck = nn.Conv2d(4, 4, 1)
        self.head = nn.Linear(4, 2)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def _load_logs(model, path):
    records = _Records()
    loggers = [logging.getLogger(n) for n in ("fvcore.common.checkpoint", "freezedet.checkpoint")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(records)
        lg.setLevel(logging.INFO)
    try:
        AtomicDetectionCheckpointer(model).load(path)
    finally:
        for lg, level in zip(loggers, levels):
            lg.removeHandler(records)
            lg.setLevel(level)
    return [(r.levelno, r.getMessage()) for r in records.records if "Loading from" not in r.msg]


def test_trunk_checkpoint_missing_keys_are_one_info_line(tmp_path):
    torch.manual_seed(0)
    trunk = _Detector().backbone.trunk.state_dict()
    path = str(tmp_path / "trunk.pth")
    torch.save({"model": {f"backbone.trunk.{k}": v for k, v in trunk.items()}}, path)
    logs = _load_logs(_Detector(), path)
    assert len(logs) == 1 and logs[0][0] == logging.INFO, logs
    expected = (
        "7/11 model keys matched, 4 missing, 0 unexpected (of 7 checkpoint keys). It initialises "
        "backbone.trunk (all of it); the 4 missing keys (in backbone, head) keep their "
        "initialisation, as expected."
    )
    assert expected in logs[0][1], logs
    # part of the trunk missing: detectron2's warning naming the keys stays
    partial = {f"backbone.trunk.{k}": v for k, v in trunk.items() if not k.startswith("1.")}
    torch.save({"model": partial}, path)
    logs = _load_logs(_Detector(), path)
    warnings = [m for level, m in logs if level == logging.WARNING]
    assert len(warnings) == 1 and "not found in the checkpoint" in warnings[0], logs
    assert "backbone.trunk.1" in warnings[0] and "as expected" not in logs[0][1], logs


def _children(pid: int):
    """Processes whose parent is ``pid`` (from /proc: psutil is not a dependency)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has exited (its parent has not reaped it)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_data_loader_workers_end_with_the_trainer(sig, coco_config, tmp_path):
    cmd = [sys.executable, os.path.join(ROOT, "tools", "train_net.py"), "--config-file"]
    cmd += [coco_config, "train.init_checkpoint=", f"train.output_dir={tmp_path / 'run'}"]
    cmd += ["train.max_iter=100000", "train.eval_period=0", "dataloader.train.num_workers=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        cmd, cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 300
        workers = []
        while len(workers) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
            workers = _children(proc.pid)
        assert len(workers) >= 2, (workers, proc.poll())
        time.sleep(1.0)  # let the workers start their loop
        proc.send_signal(sig)
        try:
            output = proc.communicate(timeout=120)[0].decode(errors="replace")
        except subprocess.TimeoutExpired as late:
            tail = (late.output or b"").decode(errors="replace")[-3000:]
            raise AssertionError(f"still running 120 s after {sig.name}:\n{tail}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # SIGTERM: SystemExit(143); SIGINT: an uncaught KeyboardInterrupt ends python by SIGINT
    expected = 128 + signal.SIGTERM if sig == signal.SIGTERM else -signal.SIGINT
    assert proc.returncode == expected, output[-3000:]
    # ended (and reaped) before the trainer exited; orphans would outlive it (torch's watchdog
    # in a worker notices a dead parent only within 5 s, and not while the worker is blocked)
    assert not [p for p in workers if _alive(p)], (workers, output[-3000:])
