"""Metrics that survive a crash: ``metrics.json`` is on disk before the checkpoint it belongs to.

detectron2 runs its ``PeriodicCheckpointer`` before its ``EvalHook`` and ``PeriodicWriter``, so
a process killed between saving ``model_000N.pth`` and the writer's next flush resumes from
iteration N+1 with iteration N's (and earlier unwritten iterations') training metrics lost for
good. Moving the writer before the checkpointer would instead lose the checkpoint of a run whose
evaluation crashes. Here the order is kept and:

- :class:`MetricsJSONWriter` is detectron2's ``JSONWriter`` remembering the last written
  iteration *per key* (detectron2 keeps one number for all keys), so writing twice in one
  iteration (training scalars before the checkpoint, evaluation results after it) drops nothing;
- :class:`MetricsFlush`, registered right before detectron2's ``PeriodicCheckpointer``, writes
  (flushed and fsync'ed) the metrics logged so far in every iteration the checkpointer saves;
- a run that resumes from a checkpoint (or starts again from iteration 0 in the same directory)
  first drops the lines of the iterations it trains again
  (:meth:`MetricsJSONWriter.drop_from`), so ``metrics.json`` never repeats an iteration's
  training metrics.

:class:`ProgressWriter` is detectron2's ``PeriodicWriter`` for the console: a progress line
after the first iteration and then at least every 30 s, not only every ``train.log_period``
iterations (at ~8 s per iteration on a CPU, 20 iterations are minutes of silence).
"""

import json
import os
import time
from collections import defaultdict

from detectron2.engine import HookBase, PeriodicWriter
from detectron2.utils.events import JSONWriter, get_event_storage
from detectron2.utils.file_io import PathManager

from ..utils.file_io import atomic_open

__all__ = ["MetricsFlush", "MetricsJSONWriter", "ProgressWriter"]


class MetricsJSONWriter(JSONWriter):
    """``JSONWriter`` that never skips a scalar newer than the last one written under its key.

    A line is written per iteration with new values; an iteration written twice (flush before a
    checkpoint, then evaluation results) gets two lines, each with its own keys.
    """

    def __init__(self, json_file, window_size=20):
        """
        Args:
            json_file (str): path of the json file; new data is appended.
            window_size (int): the window size of median smoothing for ``smoothing_hint`` scalars.
        """
        super().__init__(json_file, window_size=window_size)
        self._json_file = json_file
        self._last_write_per_key = {}

    def drop_from(self, iteration: int) -> int:
        """Remove the lines of iterations >= ``iteration`` (and a torn last line) from the file:
        a run resumed from the checkpoint of iteration ``iteration - 1`` trains and writes them
        again. Returns how many lines were removed."""
        self._file_handle.flush()
        with PathManager.open(self._json_file, "r") as f:
            lines = f.readlines()
        keep = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:  # a line torn by a kill
                continue
            if entry.get("iteration", -1) < iteration:
                keep.append(line if line.endswith("\n") else line + "\n")
        if len(keep) < len(lines):
            self._file_handle.close()
            with atomic_open(self._json_file, "w") as f:
                f.writelines(keep)
            self._file_handle = PathManager.open(self._json_file, "a")
        return len(lines) - len(keep)

    def write(self):
        storage = get_event_storage()
        to_save = defaultdict(dict)
        for k, (v, itr) in storage.latest_with_smoothing_hint(self._window_size).items():
            if itr <= self._last_write_per_key.get(k, -1):
                continue
            to_save[itr][k] = v
            self._last_write_per_key[k] = itr
        if to_save:
            self._last_write = max(self._last_write, max(to_save))
        for itr in sorted(to_save):
            self._file_handle.write(json.dumps({**to_save[itr], "iteration": itr}, sort_keys=True))
            self._file_handle.write("\n")
        self._file_handle.flush()
        try:
            os.fsync(self._file_handle.fileno())
        except (AttributeError, OSError):  # not a real file (e.g. a remote PathManager handle)
            pass


class MetricsFlush(HookBase):
    """Writes ``writer`` in the iterations where detectron2's ``PeriodicCheckpointer`` with the
    same ``period`` saves (every ``period``-th iteration and the last), so no checkpoint on disk
    is newer than the metrics logged with it. Register it right before the checkpointer hook:
    it then writes what every earlier hook logged in that iteration."""

    def __init__(self, writer: MetricsJSONWriter, *, period: int):
        """
        Args:
            writer (MetricsJSONWriter): the writer of ``metrics.json``.
            period (int): the checkpointer's period (``train.checkpointer.period``).
        """
        self._writer = writer
        self._period = period

    def after_step(self):
        it = self.trainer.iter
        if (it + 1) % self._period == 0 or it >= self.trainer.max_iter - 1:
            self._writer.write()


class ProgressWriter(PeriodicWriter):
    """detectron2's ``PeriodicWriter`` that also writes after the first iteration of a run and
    whenever ``seconds`` have passed since its last write, so slow iterations never leave the
    console silent for long; otherwise every ``period`` iterations and after the last one."""

    def __init__(self, writers, *, period: int, seconds: float = 30.0):
        """
        Args:
            writers (list[EventWriter]): the writers (e.g. detectron2's ``CommonMetricPrinter``).
            period (int): write every ``period`` iterations (``train.log_period``).
            seconds (float): write at the latest this many seconds after the last write.
        """
        super().__init__(writers, period=period)
        self._seconds = seconds
        self._last = None

    def before_train(self):
        self._last = time.perf_counter()

    def after_step(self):
        now = time.perf_counter()
        it = self.trainer.iter
        if (
            it == self.trainer.start_iter
            or (it + 1) % self._period == 0
            or it == self.trainer.max_iter - 1
            or now - self._last >= self._seconds
        ):
            for writer in self._writers:
                writer.write()
            self._last = now
