"""metrics.json reaches disk before the checkpoint of the same iteration, and nothing is dropped."""

import json
import os


from detectron2.utils.events import EventStorage, EventWriter

from freezedet.checkpoint import checkpointer as checkpoint_module
from freezedet.engine import argument_parser, main
from freezedet.engine.writers import MetricsFlush, MetricsJSONWriter, ProgressWriter
from freezedet.model_zoo import get_config_file


def _lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_two_writes_in_one_iteration_keep_both(tmp_path):
    path = str(tmp_path / "metrics.json")
    writer = MetricsJSONWriter(path)
    with EventStorage(start_iter=3) as storage:
        storage.put_scalar("total_loss", 1.5, smoothing_hint=False)
        writer.write()  # before the checkpoint
        storage.put_scalar("bbox/AP", 12.0, smoothing_hint=False)
        writer.write()  # after evaluation, same iteration
        writer.write()  # nothing new: nothing written
        storage.iter = 4
        storage.put_scalar("total_loss", 1.0, smoothing_hint=False)
        writer.write()
    writer.close()
    assert _lines(path) == [
        {"iteration": 3, "total_loss": 1.5},
        {"iteration": 3, "bbox/AP": 12.0},
        {"iteration": 4, "total_loss": 1.0},
    ]


class _Writer:
    def __init__(self):
        self.writes = []

    def write(self):
        self.writes.append(self.trainer.iter)


class _Trainer:
    max_iter = 7


class _ProgressPrinter(EventWriter):
    """An EventWriter recording the iterations it was written at."""

    def __init__(self):
        self.writes = []

    def write(self):
        self.writes.append(self.trainer.iter)


def test_metrics_flush_writes_where_the_checkpointer_saves():
    writer, trainer = _Writer(), _Trainer()
    writer.trainer = trainer
    hook = MetricsFlush(writer, period=3)
    hook.trainer = trainer
    for trainer.iter in range(trainer.max_iter):
        hook.after_step()
    # detectron2's PeriodicCheckpointer(period=3) saves model_0000002, model_0000005, model_final
    assert writer.writes == [2, 5, 6]


def test_metrics_on_disk_when_each_checkpoint_is_saved(synthetic_run_opts, tmp_path, monkeypatch):
    out = str(tmp_path / "run")
    seen = {}
    save = checkpoint_module.atomic_torch_save

    def spying_save(data, path):
        its = {
            m["iteration"] for m in _lines(os.path.join(out, "metrics.json")) if "total_loss" in m
        }
        seen[os.path.basename(path)] = (data["iteration"], its)
        return save(data, path)

    monkeypatch.setattr(checkpoint_module, "atomic_torch_save", spying_save)
    args = argument_parser().parse_args(
        [
            "--config-file",
            get_config_file("DeepForest/faster_rcnn_fpn.py"),
            "train.init_checkpoint=",
            f"train.output_dir={out}",
            "train.log_period=20",  # the periodic writer alone would write only at the end
            "train.max_iter=5",
            "train.checkpointer.period=2",
            "train.eval_period=0",
            *synthetic_run_opts,
        ]
    )
    main(args)
    assert sorted(seen) == ["model_0000001.pth", "model_0000003.pth", "model_final.pth"]
    for name, (it, written) in seen.items():
        # detectron2's writers log the latest value per key at each write, not every iteration
        assert max(written) == it, (name, it, written)


def test_drop_from_removes_the_iterations_a_resumed_run_writes_again(tmp_path):
    path = tmp_path / "metrics.json"
    lines = [{"iteration": i, "total_loss": float(i)} for i in (0, 1, 2, 3)]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"iteration": 4, "tot')
    writer = MetricsJSONWriter(str(path))
    assert writer.drop_from(2) == 3  # iterations 2, 3 and the torn line
    with EventStorage(start_iter=2) as storage:
        storage.put_scalar("total_loss", 7.0, smoothing_hint=False)
        writer.write()
    writer.close()
    assert _lines(path) == lines[:2] + [{"iteration": 2, "total_loss": 7.0}]
    writer = MetricsJSONWriter(str(path))
    assert writer.drop_from(10) == 0  # nothing newer: the file is left as it is
    writer.close()
    assert len(_lines(path)) == 3


class _ProgressTrainer:
    start_iter, max_iter, iter = 3, 100, 3


def test_progress_writer_writes_first_then_by_period_or_time(monkeypatch):
    from freezedet.engine import writers as writers_module

    clock = [0.0]
    monkeypatch.setattr(writers_module.time, "perf_counter", lambda: clock[0])
    writer, trainer = _ProgressPrinter(), _ProgressTrainer()
    hook = ProgressWriter([writer], period=20, seconds=30.0)
    hook.trainer = writer.trainer = trainer
    hook.before_train()
    for trainer.iter in range(trainer.start_iter, trainer.max_iter):
        clock[0] += 8.0  # 8 s per iteration
        hook.after_step()
    # the first iteration, then every 4th (32 s >= 30 s) restarting the count at each write,
    # iteration 19 and 39 ... by period, and the last
    assert writer.writes[:4] == [3, 7, 11, 15], writer.writes
    assert 19 in writer.writes and 99 == writer.writes[-1]
    gaps = [b - a for a, b in zip(writer.writes, writer.writes[1:])]
    assert max(gaps) == 4 and min(gaps) >= 1, gaps

    fast, trainer = _ProgressPrinter(), _ProgressTrainer()
    hook = ProgressWriter([fast], period=20, seconds=30.0)
    hook.trainer = fast.trainer = trainer
    clock[0] = 0.0
    hook.before_train()
    for trainer.iter in range(trainer.start_iter, trainer.max_iter):
        clock[0] += 0.1  # fast iterations: detectron2's period
        hook.after_step()
    assert fast.writes == [3, 19, 39, 59, 79, 99], fast.writes
