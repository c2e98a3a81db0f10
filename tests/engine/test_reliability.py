"""Reliability through tools/train_net.py: crash + resume, atomic checkpoints, non-finite loss,
2-process DDP on CPU (gloo)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from freezedet.utils.file_io import atomic_torch_save

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN_NET = os.path.join(REPO, "tools", "train_net.py")


def _cmd(config, out, *extra):
    flags = [e for e in extra if e.startswith("--") or e.isdigit()]
    return [
        sys.executable,
        TRAIN_NET,
        "--config-file",
        config,
        *flags,
        f"train.output_dir={out}",
        "train.init_checkpoint=",
        *[e for e in extra if e not in flags],
    ]


def _run(cmd, timeout=300):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
    assert r.returncode == 0, f"{cmd} failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    return r.stdout + r.stderr


def _losses(out):
    """{iteration: total_loss}, the last record of each iteration (a resumed run rewrites some)."""
    res = {}
    with open(os.path.join(out, "metrics.json")) as f:
        for line in f:
            m = json.loads(line)
            if "total_loss_raw" in m:
                res[m["iteration"]] = m["total_loss_raw"]
    return res


def test_sigkill_then_resume_matches_uninterrupted_run(coco_config, tmp_path):
    opts = ["train.max_iter=8", "train.checkpointer.period=4"]
    ref = str(tmp_path / "ref")
    _run(_cmd(coco_config, ref, *opts))

    out = str(tmp_path / "killed")
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        _cmd(coco_config, out, *opts),
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpt = os.path.join(out, "model_0000003.pth")
    deadline = time.time() + 240
    while not (os.path.exists(ckpt) and os.path.exists(os.path.join(out, "last_checkpoint"))):
        assert proc.poll() is None, "training ended before its first checkpoint"
        assert time.time() < deadline, "no checkpoint within 240 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not os.path.exists(os.path.join(out, "model_final.pth")), "killed too late to test"
    # the kill may land mid-save: last_checkpoint still names a complete file
    last = open(os.path.join(out, "last_checkpoint")).read()
    torch.load(os.path.join(out, last), weights_only=True)

    log = _run(_cmd(coco_config, out, "--resume", *opts))
    assert "Starting training from iteration 4" in log, log[-2000:]
    ref_losses, resumed = _losses(ref), _losses(out)
    assert sorted(ref_losses) == sorted(resumed) == list(range(8))
    for it in range(8):
        assert resumed[it] == pytest.approx(ref_losses[it], rel=1e-5, abs=1e-6), it
    a = torch.load(os.path.join(ref, "model_final.pth"), weights_only=True)["model"]
    b = torch.load(os.path.join(out, "model_final.pth"), weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=k)


def test_atomic_save_keeps_previous_file(tmp_path, monkeypatch):
    path = str(tmp_path / "model.pth")
    atomic_torch_save({"v": torch.ones(3)}, path)

    def broken_save(obj, f, *a, **k):
        f.write(b"partial")
        raise KeyboardInterrupt("killed during save")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"v": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["v"], torch.ones(3))
    assert os.listdir(tmp_path) == ["model.pth"], "temp file left behind"


def test_non_finite_loss_stops_with_message(coco_config, tmp_path):
    out = str(tmp_path / "nan")
    cmd = _cmd(
        coco_config,
        out,
        "train.max_iter=40",
        "optimizer.lr=1e8",
        "train.clip_grad.enabled=False",
        "train.checkpointer.period=1",
    )
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    log = r.stderr + r.stdout
    assert r.returncode != 0, "training with lr=1e8 should have diverged"
    assert "Loss became infinite or NaN at iteration=" in log
    assert "loss_dict" in log, "the message must name the loss terms"
    # every checkpoint written is a good one: complete and finite
    last = open(os.path.join(out, "last_checkpoint")).read()
    kept = torch.load(os.path.join(out, last), weights_only=True)
    assert all(torch.isfinite(v).all() for v in kept["model"].values() if v.is_floating_point())


def test_ddp_two_cpu_processes_gloo(coco_config, tmp_path):
    out = str(tmp_path / "ddp")
    log = _run(
        _cmd(
            coco_config,
            out,
            "--num-gpus",
            "2",
            "train.max_iter=3",
            "dataloader.train.total_batch_size=4",
        ),
        timeout=400,
    )
    assert "all 2 ranks hold identical weights" in log, log[-3000:]
    assert "on 2 devices" in log, "inference must be sharded over both processes"
    assert (
        log.count("Evaluating predictions with official COCO API") == 1
    ), "predictions must be gathered and evaluated once, on rank 0"
    with open(os.path.join(out, "eval_results.json")) as f:
        assert "AP" in json.load(f)["bbox"]


def test_weight_key_mismatch_is_counted(tmp_path, caplog):
    from freezedet.checkpoint import AtomicDetectionCheckpointer

    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    path = str(tmp_path / "partial.pth")
    torch.save(
        {
            "model": {
                "0.weight": torch.ones(3, 2),
                "0.bias": torch.ones(3),
                "head.weight": torch.ones(1),
            }
        },
        path,
    )
    ckpt = AtomicDetectionCheckpointer(model)
    with caplog.at_level("INFO"):
        ckpt.load(path)
    assert ckpt.last_load_stats == {
        "matched": 2,
        "missing": 2,
        "unexpected": 1,
        "checkpoint_keys": 3,
    }
    assert "2/4 model keys matched, 2 missing, 1 unexpected" in caplog.text
    assert torch.equal(model[0].weight, torch.ones(3, 2))
