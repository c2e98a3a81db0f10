"""Training and evaluation of LazyConfig models: the path behind ``tools/train_net.py``.

It reads as detectron2's ``tools/lazyconfig_train_net.py`` does, top to bottom in
:func:`do_train`: model → optimizer → DDP → trainer → checkpointer → a list of hooks → weights
(resume, or the initial weights) → train. What freezedet adds is each a hook, a config value or
a named step: CPU multi-process (gloo) runs, AMP only where it exists (CUDA), gradient clipping
(:mod:`~freezedet.engine.grad_clip`), atomic checkpoints, exact resumption
(:mod:`~freezedet.engine.resumable`), ``metrics.json`` on disk before each checkpoint
(:mod:`~freezedet.engine.writers`), AlignDet → detector initialisation
(:func:`~freezedet.checkpoint.load_init_weights`), s/iter and peak memory in ``metrics.json``, a
start-of-run summary of the recipe's choices (:mod:`~freezedet.engine.summary`), a readable
log (versions, the full config and the model printout go to ``env.txt``, ``config.yaml`` and
``model.txt`` in the output directory, not to the console; a progress line after the first
iteration and at least every 30 s: :class:`~freezedet.engine.writers.ProgressWriter`), and a
SIGTERM that ends training as Ctrl-C does (the data loader's worker processes end with it).

The command line is in :mod:`freezedet.engine.launch` (``python -m freezedet.engine.launch``).
"""

import argparse
import contextlib
import json
import logging
import os
import resource
import signal
import sys
import threading
import time

import torch

from detectron2.config import instantiate
from detectron2.engine import hooks
from detectron2.utils import comm
from detectron2.utils.events import CommonMetricPrinter, TensorboardXWriter

from .. import compat
from ..analysis.params import format_parameter_table, parameter_table
from ..checkpoint import AtomicDetectionCheckpointer, load_init_weights
from ..checkpoint.checkpointer import PeriodicCheckpointer
from ..config import load_config, resolve_config_file, resolve_run
from ..utils.errors import UserValueError
from .defaults import build_model, build_optimizer, build_trainer, setup_run, write_output_text
from .evaluate import check_test_data, do_test, do_test_tta, has_tta
from .resumable import ResumableTrainLoader, RNGStateHook, TrainLoaderStart, WeightSyncCheck
from .summary import check_feature_cache_config, describe_run
from .writers import MetricsFlush, MetricsJSONWriter, ProgressWriter

__all__ = ["do_train", "main", "peak_memory_mb"]

logger = logging.getLogger("freezedet")


def peak_memory_mb(device: str) -> float:
    """Peak memory of this process: CUDA allocator peak on GPU, peak RSS on CPU."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / 2**20


class _StepStats(hooks.HookBase):
    """Records s/iter (data + compute), the training wall-clock so far (``train_time_s``: the
    sum of step times, evaluation and checkpointing excluded; kept across ``--resume``), peak
    memory and the unsmoothed total loss (detectron2's writers report a 20-iteration median)
    into the event storage."""

    def __init__(self, device):
        self._device = device
        self._train_time = 0.0

    def before_step(self):
        self._t0 = time.perf_counter()

    def after_step(self):
        storage = self.trainer.storage
        step = time.perf_counter() - self._t0
        self._train_time += step
        storage.put_scalar("s_per_iter", step, smoothing_hint=True)
        storage.put_scalar("train_time_s", self._train_time, smoothing_hint=False)
        storage.put_scalar("peak_mem_mb", peak_memory_mb(self._device), smoothing_hint=False)
        if "total_loss" in storage.histories():
            total = storage.history("total_loss").latest()
            storage.put_scalar("total_loss_raw", total, smoothing_hint=False)

    def state_dict(self):
        return {"train_time_s": self._train_time}

    def load_state_dict(self, state):
        self._train_time = float(state["train_time_s"])


def do_train(args, cfg):
    """Train (resuming if asked); returns the model and the last evaluation's results."""
    check_feature_cache_config(cfg)  # the model's trunk against the train augmentations
    check_test_data(cfg)  # bad evaluation data stops the run now, not after training
    model = build_model(cfg)
    logger.info(
        f"model: {type(model).__name__} (printed to model.txt), parameters:\n"
        + format_parameter_table(parameter_table(model))
    )
    write_output_text(cfg, "model.txt", f"{model}\n")
    optimizer = build_optimizer(cfg, model)
    model = compat.create_ddp_model(model, **cfg.train.get("ddp", {}))
    train_loader = ResumableTrainLoader(cfg)
    trainer = build_trainer(cfg, model, train_loader, optimizer)
    checkpointer = AtomicDetectionCheckpointer(model, cfg.train.output_dir, trainer=trainer)

    main_process = comm.is_main_process()
    if main_process:
        metrics = MetricsJSONWriter(os.path.join(cfg.train.output_dir, "metrics.json"))
        out, max_iter = cfg.train.output_dir, cfg.train.max_iter
        writers = [TensorboardXWriter(out), metrics]
        printer = CommonMetricPrinter(max_iter)
    last_eval = {}

    def evaluate():
        last_eval.clear()
        last_eval.update(do_test(cfg, model))
        return last_eval

    def evaluate_tta():  # after training only: the final results gain "<task>_TTA" keys
        results = do_test_tta(cfg, model)
        last_eval.update(results)
        return results

    trainer.register_hooks(
        [
            hooks.IterationTimer(),
            TrainLoaderStart(train_loader),
            RNGStateHook(),
            _StepStats(cfg.train.device),
            hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
            # before the checkpointer: a checkpoint holds the state after the hooks' updates
            *[instantiate(h) for h in cfg.train.get("extra_hooks", None) or []],
            # metrics.json on disk before the checkpoint of the same iteration (writers.py)
            MetricsFlush(metrics, period=cfg.train.checkpointer.period) if main_process else None,
            (
                PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer)
                if main_process
                else None
            ),
            WeightSyncCheck(),
            hooks.EvalHook(cfg.train.eval_period, evaluate),
            # period 0: only after the last iteration, after the plain evaluation
            hooks.EvalHook(0, evaluate_tta) if has_tta(cfg) else None,
            hooks.PeriodicWriter(writers, period=cfg.train.log_period) if main_process else None,
            ProgressWriter([printer], period=cfg.train.log_period) if main_process else None,
        ]
    )
    resume = args.resume and checkpointer.has_checkpoint()
    _say_where_training_starts(cfg, args, checkpointer)
    # weights: the run's last checkpoint, or train.init_checkpoint (an AlignDet pre-training
    # checkpoint reduced to what a detector takes from it)
    if resume:
        checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=True)
    else:
        load_init_weights(
            model, cfg.train.init_checkpoint, aligndet_transfer=cfg.train.get("aligndet_transfer")
        )
    start_iter = trainer.iter + 1 if resume else 0
    if main_process:
        # lines of the iterations this run trains again (written after its checkpoint was saved)
        dropped = metrics.drop_from(start_iter)
        if dropped:
            logger.info(f"metrics.json: {dropped} lines of iterations >= {start_iter} removed")
    with _sigterm_exits():
        trainer.train(start_iter, cfg.train.max_iter)
    return model, dict(last_eval)


@contextlib.contextmanager
def _sigterm_exits():
    """While training, SIGTERM raises ``SystemExit(143)`` and SIGINT KeyboardInterrupt, each logged:
    Python's default action for SIGTERM ends the process at once, and the data loader's worker
    processes outlived it; an exception unwinds training and the interpreter's exit ends them.
    (Only the main thread can set signal handlers; elsewhere this does nothing.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _exit(signum, frame):
        logger.warning(f"{signal.Signals(signum).name}: stopping training")
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    # SIGINT too: a process started with SIGINT ignored (inherited) would not stop otherwise
    previous = {sig: signal.signal(sig, _exit) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _say_where_training_starts(cfg, args, checkpointer):
    init = cfg.train.init_checkpoint or "random initialisation (train.init_checkpoint is empty)"
    out = cfg.train.output_dir
    if args.resume and checkpointer.has_checkpoint():
        logger.info(f"--resume: continuing from {checkpointer.get_checkpoint_file()}")
    elif args.resume:
        logger.warning(
            f"--resume: {out} holds no checkpoint (no last_checkpoint file), so training starts "
            f"fresh at iteration 0 from {init}."
        )
    else:
        if checkpointer.has_checkpoint():
            logger.warning(
                f"{out} already holds checkpoints ({checkpointer.get_checkpoint_file()}); this "
                "run starts from iteration 0 and overwrites them (--resume continues instead)."
            )
        logger.info(f"training starts at iteration 0 from {init}")


def _load_eval_weights(cfg, model, allow_missing: bool):
    """Load ``train.init_checkpoint`` for ``--eval-only``; weights that did not load are an
    error unless ``allow_missing`` (the detector would be evaluated with random parts)."""
    init = cfg.train.init_checkpoint
    hint = (
        "Pass the trained weights, e.g. train.init_checkpoint="
        f"{os.path.join(cfg.train.output_dir, 'model_final.pth')}, or --allow-missing-weights "
        "to evaluate anyway."
    )
    if not init and not allow_missing:
        raise UserValueError(
            "--eval-only without weights: train.init_checkpoint is empty, so the detector would "
            f"be evaluated with randomly initialised heads (AP ~0). {hint}"
        )
    checkpointer = load_init_weights(model, init)
    stats = getattr(checkpointer, "last_load_stats", None)
    if stats and stats["missing"] and not allow_missing:
        missing = checkpointer.last_missing_keys
        raise UserValueError(
            f"--eval-only: {init} leaves {stats['missing']} of "
            f"{stats['matched'] + stats['missing']} model weight tensors uninitialised (e.g. "
            f"{', '.join(missing[:3])}): the detector would be evaluated with random parts. Is it "
            f"an ImageNet trunk checkpoint rather than a trained detector? {hint}"
        )


def evaluate_run(run, *, weights=None, output_dir=None, device=None, opts=()):
    """``tools/evaluate.py --run``: evaluate a training output directory's model on its config's
    test set, with its ``config.yaml`` (every override it was trained with) and its weights
    (``model_final.pth``, else the last checkpoint) unless ``weights`` is given; writes
    ``eval_results.json`` into ``output_dir`` (default ``<run>/eval``) and returns the results."""
    if not os.path.isdir(run):
        raise UserValueError(
            f"--run {run}: not a directory; give a training run's output directory (the folder "
            "training wrote config.yaml and its checkpoints into)"
        )
    weights = weights or resolve_run(run).weights
    if not weights:
        raise UserValueError(
            f"--run {run}: the directory holds no checkpoint (model_final.pth or last_checkpoint);"
            " pass --weights"
        )
    output_dir = output_dir or os.path.join(run, "eval")
    args = argparse.Namespace(
        config_file=run,
        eval_only=True,
        allow_missing_weights=False,
        device=device,
        opts=[f"train.init_checkpoint={weights}", f"train.output_dir={output_dir}", *opts],
        resume=False,
    )
    return main(args)


def main(args):
    """Train, or with ``--eval-only`` evaluate, the config of ``args`` in this process; writes
    ``eval_results.json`` and returns the results."""
    args.config_file = resolve_config_file(args.config_file)
    cfg = load_config(args.config_file, args.opts)
    if args.device:
        cfg.train.device = args.device
    setup_run(cfg, args)
    logger.info("run summary:\n  " + "\n  ".join(describe_run(cfg, eval_only=args.eval_only)))
    if args.eval_only:
        model = compat.create_ddp_model(build_model(cfg))
        _load_eval_weights(cfg, model, getattr(args, "allow_missing_weights", False))
        results = do_test(cfg, model)
        results.update(do_test_tta(cfg, model))
    else:
        # detectron2's EvalHook always evaluates after the last iteration
        _, results = do_train(args, cfg)
    if comm.is_main_process() and results:
        write_output_text(cfg, "eval_results.json", json.dumps(results, indent=2))
    return results
