"""Training and evaluation of LazyConfig models, the logic behind ``tools/train_net.py``.

Follows detectron2's ``tools/lazyconfig_train_net.py`` and adds what freezedet's users need:
CPU multi-process (gloo) runs, AMP only where it exists (CUDA), gradient clipping, atomic
checkpoints, an output directory derived from the config file name, a per-component
trainable-parameter report, s/iter and peak memory in ``metrics.json``, a start-of-run summary
of the recipe's choices (:mod:`freezedet.engine.summary`), and a readable log: versions, the full
config and the model printout go to ``env.txt``, ``config.yaml`` and ``model.txt`` in the output
directory, not to the console.
"""

import json
import logging
import os
import resource
import sys
import time
import types

import torch

import detectron2
from detectron2.config import LazyConfig, instantiate
from detectron2.engine import AMPTrainer, SimpleTrainer, default_writers, hooks
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.layers import NaiveSyncBatchNorm
from detectron2.utils import comm
from detectron2.utils.collect_env import collect_env_info
from detectron2.utils.env import seed_all_rng
from detectron2.utils.events import JSONWriter
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import setup_logger

from .. import compat
from ..config import run_output_dir, select_trunk_and_mode
from ..evaluation import PerHeadEvaluator
from ..modeling.backbone import check_feature_cache_config, replace_batchnorm
from ..modeling.meta_arch import ALL_HEADS
from ..modeling.trainable import train_only
from ..analysis.params import format_parameter_table, parameter_table
from .checkpoint import AtomicDetectionCheckpointer, atomic_write_text
from .cli import argument_parser
from .config_keys import check_call_arguments, check_override_keys
from .loaders import instantiate_loader
from .resumable import RNGStateHook, WeightSyncCheck, deferred_train_loader
from .summary import (
    check_classes,
    check_same_classes,
    describe_run,
    model_detections_per_image,
)
from .writers import MetricsJSONWriter

__all__ = [
    "argument_parser",
    "default_output_dir",
    "load_config",
    "build_model",
    "build_trainer_parts",
    "setup_run",
    "do_test",
    "do_train",
    "main",
    "run",
    "peak_memory_mb",
]

logger = logging.getLogger("freezedet")


def default_output_dir(config_file: str) -> str:
    """``./output/<config path below configs/, without .py>``: runs of different configs never
    collide."""
    path = os.path.abspath(config_file)
    parts = path.split(os.sep)
    if "configs" in parts:
        rel = os.sep.join(parts[len(parts) - parts[::-1].index("configs") :])
    else:
        rel = os.path.basename(path)
    return os.path.join("output", os.path.splitext(rel)[0])


def resolve_config_file(config_file: str) -> str:
    """A path as given, or else a config shipped with freezedet (``"DeepForest/....py"``)."""
    from ..model_zoo import get_config_file

    return config_file if os.path.exists(config_file) else get_config_file(config_file)


def load_config(config_file: str, overrides=()):
    """Load a LazyConfig, apply ``key=value`` overrides (unknown keys, and LazyCall arguments
    their target does not take, are errors: :mod:`freezedet.engine.config_keys`; ``trunk.name=``
    / ``trunk.mode=`` first: :func:`freezedet.config.select_trunk_and_mode`), resolve defaults
    that depend on the file and its trunk (output dir) and the machine (device)."""
    config_file = resolve_config_file(config_file)
    cfg = LazyConfig.load(config_file)
    overrides = select_trunk_and_mode(cfg, overrides, config_file)
    check_override_keys(cfg, overrides, config_file)
    cfg = LazyConfig.apply_overrides(cfg, list(overrides))
    check_call_arguments(cfg, config_file)
    if "train" not in cfg:  # a data-only config (e.g. for tools/visualize_data.py)
        return cfg
    if cfg.train.get("output_dir") is None:
        cfg.train.output_dir = run_output_dir(cfg, default_output_dir(config_file))
    if cfg.train.get("device") is None:
        cfg.train.device = "cuda" if torch.cuda.is_available() else "cpu"
    return cfg


def peak_memory_mb(device: str) -> float:
    """Peak memory of this process: CUDA allocator peak on GPU, peak RSS on CPU."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / 2**20


def do_test(cfg, model):
    """Evaluate on ``cfg.dataloader.test`` with ``cfg.dataloader.evaluator``; returns metrics.

    A model with several detectors (``head_names``, e.g. ``SharedTrunkDetectors``) is evaluated
    in one pass over the data (one trunk pass per image), each detector by its own instance of
    the evaluator (output dir ``<output_dir>/<head>``), its results keyed ``"<head>/<task>"``."""
    if "evaluator" not in cfg.dataloader:
        return {}
    heads = getattr(getattr(model, "module", model), "head_names", None)
    return _test_each_head(cfg, model, heads) if heads else _test_one(cfg, model)


def _evaluator_output_dir(cfg):
    # detectron2 caches the converted ground truth there for datasets not in COCO format
    return cfg.dataloader.evaluator.get("output_dir", None) or os.path.join(
        cfg.train.output_dir, "inference"
    )


def _test_loader(cfg):
    # first: it may register the evaluator's dataset
    loader = instantiate_loader(cfg.dataloader.test)
    check_classes(cfg, cfg.dataloader.test.get("dataset", None))
    check_same_classes(cfg)
    return loader


def _test_each_head(cfg, model, heads):
    inner = getattr(model, "module", model)
    base = _evaluator_output_dir(cfg)
    loader = _test_loader(cfg)
    evaluators = {}
    for name in heads:
        evaluator_cfg = cfg.dataloader.evaluator.copy()
        evaluator_cfg.output_dir = os.path.join(base, name)
        evaluators[name] = instantiate(evaluator_cfg)
    previous, inner.eval_head = inner.eval_head, ALL_HEADS
    try:
        return _inference(model, loader, PerHeadEvaluator(evaluators))
    finally:
        inner.eval_head = previous


def _test_one(cfg, model):
    cfg.dataloader.evaluator.output_dir = _evaluator_output_dir(cfg)
    loader = _test_loader(cfg)
    evaluator = instantiate(cfg.dataloader.evaluator)
    counted = getattr(evaluator, "max_dets_per_image", None)  # freezedet's COCOEvaluator
    outputs = model_detections_per_image(cfg)
    if isinstance(counted, int) and outputs is not None and outputs < counted:
        logger.warning(
            f"AP counts up to {counted} detections per image but the model outputs at most "
            f"{outputs} (test_topk_per_image): on images with more objects AP is capped there."
        )
    return _inference(model, loader, evaluator)


def _inference(model, loader, evaluator):
    ret = inference_on_dataset(model, loader, evaluator)
    if comm.is_main_process() and ret:
        print_csv_format(ret)
    return ret


def _clip_gradients(optimizer, clip_cfg):
    """Make ``optimizer.step`` clip the gradients of its parameters first."""
    params = [p for g in optimizer.param_groups for p in g["params"]]
    step = optimizer.step
    kind, value = clip_cfg.get("clip_type", "norm"), clip_cfg.get("clip_value", 1.0)
    assert kind in ("norm", "value"), f"train.clip_grad.clip_type={kind!r}: 'norm' or 'value'"

    def clipped_step(self, *args, **kwargs):
        grads = [p for p in params if p.grad is not None]
        if kind == "norm":
            torch.nn.utils.clip_grad_norm_(grads, value, clip_cfg.get("norm_type", 2.0))
        else:
            torch.nn.utils.clip_grad_value_(grads, value)
        return step(*args, **kwargs)

    # a bound method: torch's LR schedulers wrap ``optimizer.step.__func__``
    optimizer.step = types.MethodType(clipped_step, optimizer)
    return optimizer


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


def build_model(cfg):
    """Instantiate ``cfg.model`` on ``cfg.train.device``; SyncBN becomes naiveSyncBN on CPU;
    with ``train.trainable`` (parameter-name patterns) only the matching parameters train
    (:func:`freezedet.modeling.trainable.train_only`)."""
    model = instantiate(cfg.model)
    patterns = cfg.train.get("trainable", None)
    if patterns:
        train_only(model=model, patterns=list(patterns))
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        logger.info(f"train.trainable={list(patterns)}: {len(names)} parameter tensors train")
    if not str(cfg.train.device).startswith("cuda"):
        n = sum(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
        if n:
            logger.warning(
                f"{n} SyncBatchNorm layers replaced by detectron2's NaiveSyncBatchNorm: "
                "torch's SyncBatchNorm needs CUDA."
            )
            model = replace_batchnorm(model, NaiveSyncBatchNorm, types=(torch.nn.SyncBatchNorm,))
    return model.to(cfg.train.device)


def build_trainer_parts(cfg):
    """Model (on its device, DDP-wrapped if distributed), optimizer, train loader, trainer."""
    check_feature_cache_config(cfg)
    model = build_model(cfg)
    logger.info(
        f"model: {type(model).__name__} (do_train prints it to model.txt), parameters:\n"
        + format_parameter_table(parameter_table(model))
    )
    cfg.optimizer.params.model = model
    optim = instantiate(cfg.optimizer)
    clip = cfg.train.get("clip_grad", None)
    if clip and clip.get("enabled", False):
        _clip_gradients(optim, clip)
    ddp = cfg.train.get("ddp", {})
    model = compat.create_ddp_model(model, **ddp)
    amp = cfg.train.get("amp", {}).get("enabled", False)
    if amp and not str(cfg.train.device).startswith("cuda"):
        logger.warning("train.amp.enabled=True ignored: AMP is only used on CUDA.")
        amp = False
    holder = []
    train_loader = deferred_train_loader(cfg, lambda: holder[0])
    trainer = (AMPTrainer if amp else SimpleTrainer)(model, train_loader, optim)
    holder.append(trainer)
    return model, optim, trainer


def do_train(args, cfg):
    """Train (resuming if asked); returns the model and the last evaluation's results."""
    model, optim, trainer = build_trainer_parts(cfg)
    _write_text(cfg, "model.txt", f"{getattr(model, 'module', model)}\n")
    last_eval = {}

    def evaluate():
        last_eval.clear()
        last_eval.update(do_test(cfg, model))
        return last_eval

    writers, json_writer = [], None
    if comm.is_main_process():
        for w in default_writers(cfg.train.output_dir, cfg.train.max_iter):
            if isinstance(w, JSONWriter):
                w.close()  # replaced by the per-key writer below
            else:
                writers.append(w)
        json_writer = MetricsJSONWriter(os.path.join(cfg.train.output_dir, "metrics.json"))
        writers.append(json_writer)
    checkpointer = AtomicDetectionCheckpointer(
        model,
        cfg.train.output_dir,
        aligndet_transfer=cfg.train.get("aligndet_transfer", None),
        # metrics.json is on disk before the checkpoint of the same iteration (writers.py)
        before_save=json_writer.write if json_writer is not None else None,
        trainer=trainer,
    )
    trainer.register_hooks(
        [
            hooks.IterationTimer(),
            RNGStateHook(),
            _StepStats(cfg.train.device),
            hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
            # before the checkpointer: a checkpoint holds the state after the hooks' updates
            *[instantiate(h) for h in cfg.train.get("extra_hooks", None) or []],
            (
                hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer)
                if comm.is_main_process()
                else None
            ),
            WeightSyncCheck(),
            hooks.EvalHook(cfg.train.eval_period, evaluate),
            (
                hooks.PeriodicWriter(writers, period=cfg.train.log_period)
                if comm.is_main_process()
                else None
            ),
        ]
    )
    _say_where_training_starts(cfg, args, checkpointer)
    checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=args.resume)
    start_iter = trainer.iter + 1 if args.resume and checkpointer.has_checkpoint() else 0
    trainer.train(start_iter, cfg.train.max_iter)
    return model, dict(last_eval)


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


def _write_text(cfg, name: str, text: str):
    if comm.is_main_process():
        PathManager.mkdirs(cfg.train.output_dir)
        atomic_write_text(text, os.path.join(cfg.train.output_dir, name))


def setup_run(cfg, args):
    """detectron2's ``default_setup``, with a console a person can read: loggers (console and
    ``log.txt``, no colour codes in the file), ``env.txt`` (detectron2's environment report),
    ``config.yaml`` (the full config), seeds (``train.seed``: -1 random, else seed + rank) and
    cudnn benchmark (``train.cudnn_benchmark``, training only)."""
    out = cfg.train.output_dir
    rank = comm.get_rank()
    if comm.is_main_process():
        PathManager.mkdirs(out)
    for name in ("fvcore", "detectron2", "freezedet"):
        setup_logger(out, distributed_rank=rank, name=name)
    if comm.is_main_process():
        _write_text(cfg, "env.txt", collect_env_info() + "\n")
        LazyConfig.save(cfg, os.path.join(out, "config.yaml"))
    logger.info(
        f"freezedet run: rank {rank} of {comm.get_world_size()}, {cfg.train.device}, torch "
        f"{torch.__version__}, detectron2 {detectron2.__version__}; output {out} (full config in "
        f"config.yaml, versions in env.txt); config {args.config_file}"
        + (f", overrides {' '.join(args.opts)}" if args.opts else "")
    )
    seed = cfg.train.get("seed", -1)
    seed_all_rng(None if seed < 0 else seed + rank)
    if not args.eval_only:
        torch.backends.cudnn.benchmark = cfg.train.get("cudnn_benchmark", False)


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
        raise ValueError(
            "--eval-only without weights: train.init_checkpoint is empty, so the detector would "
            f"be evaluated with randomly initialised heads (AP ~0). {hint}"
        )
    checkpointer = AtomicDetectionCheckpointer(model)
    checkpointer.load(init)
    stats = getattr(checkpointer, "last_load_stats", None)
    if stats and stats["missing"] and not allow_missing:
        missing = checkpointer.last_missing_keys
        raise ValueError(
            f"--eval-only: {init} leaves {stats['missing']} of "
            f"{stats['matched'] + stats['missing']} model weight tensors uninitialised (e.g. "
            f"{', '.join(missing[:3])}): the detector would be evaluated with random parts. Is it "
            f"an ImageNet trunk checkpoint rather than a trained detector? {hint}"
        )


def main(args):
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
    else:
        # detectron2's EvalHook always evaluates after the last iteration
        _, results = do_train(args, cfg)
    if comm.is_main_process() and results:
        with open(os.path.join(cfg.train.output_dir, "eval_results.json"), "w") as f:
            json.dump(results, f, indent=2)
    return results


def run(args):
    """Entry point of ``tools/train_net.py``: launch ``main`` on every process."""
    return compat.launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
