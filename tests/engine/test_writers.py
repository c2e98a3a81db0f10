"""metrics.json reaches disk before the checkpoint of the same iteration, and nothing is dropped."""

import json
import os
import types

from detectron2.utils.events import EventStorage

from freezedet.engine import argument_parser, main
from freezedet.engine.checkpoint import AtomicDetectionCheckpointer
from freezedet.engine.writers import FlushBeforeCheckpoint, MetricsJSONWriter
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


def test_flush_hook_writes_exactly_on_checkpoint_iterations():
    calls = []
    writer = types.SimpleNamespace(write=lambda: calls.append(hook.trainer.iter))
    hook = FlushBeforeCheckpoint(writer, types.SimpleNamespace(period=4))
    hook.trainer = types.SimpleNamespace(iter=0, max_iter=10)
    for it in range(10):
        hook.trainer.iter = it
        hook.after_step()
    assert calls == [3, 7, 9]


def test_metrics_on_disk_when_each_checkpoint_is_saved(synthetic_run_opts, tmp_path, monkeypatch):
    out = str(tmp_path / "run")
    seen = {}
    save = AtomicDetectionCheckpointer.save

    def spying_save(self, name, **kwargs):
        path = os.path.join(out, "metrics.json")
        its = {m["iteration"] for m in _lines(path) if "total_loss" in m}
        seen[name] = (kwargs.get("iteration"), its)
        return save(self, name, **kwargs)

    monkeypatch.setattr(AtomicDetectionCheckpointer, "save", spying_save)
    args = argument_parser().parse_args(
        [
            "--config-file",
            get_config_file("DeepForest/faster_rcnn_fpn_effl0_frozen.py"),
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
    assert sorted(seen) == ["model_0000001", "model_0000003", "model_final"]
    for name, (it, written) in seen.items():
        # detectron2's writers log the latest value per key at each write, not every iteration
        assert max(written) == it, (name, it, written)
