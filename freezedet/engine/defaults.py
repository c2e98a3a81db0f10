"""The pieces of freezedet's training path, as detectron2 keeps its own in
``detectron2/engine/defaults.py``: run setup (logs, ``env.txt``, ``config.yaml``, seeds), the
model, the optimizer and the trainer built from a LazyConfig."""

import logging
import os
import warnings

import torch
from omegaconf import OmegaConf

import detectron2
from detectron2.config import LazyConfig, instantiate
from detectron2.engine import AMPTrainer, SimpleTrainer
from detectron2.layers import NaiveSyncBatchNorm
from detectron2.utils import comm
from detectron2.utils.collect_env import collect_env_info
from detectron2.utils.env import seed_all_rng
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import setup_logger

from ..modeling.backbone import replace_batchnorm
from ..modeling.trainable import train_only
from ..utils.file_io import atomic_write_text
from .grad_clip import add_gradient_clipping

__all__ = [
    "build_model",
    "build_optimizer",
    "build_tta_model",
    "build_trainer",
    "filter_known_warnings",
    "setup_run",
    "write_output_text",
]

logger = logging.getLogger("freezedet")


# Third-party warnings that are understood and harmless here: (message regex, category, module).
KNOWN_WARNINGS = (
    # detectron2 0.6's anchor generator calls torch.meshgrid without `indexing`; it relies on the
    # "ij" default, which is what the warning says a future release will require to be explicit
    (r"torch\.meshgrid: in an upcoming release", UserWarning, r"torch\.functional"),
    # fvcore's VFlipTransform wraps a read-only image in a tensor only to flip it into a copy; the
    # tensor is never written to
    (r"The given NumPy array is not writable", UserWarning, r"fvcore\.transforms\.transform"),
)


def filter_known_warnings():
    """Silence :data:`KNOWN_WARNINGS` (each by message, category and the module that warns), in
    this process and the data-loader workers it forks later."""
    for message, category, module in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)


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


def build_tta_model(cfg, model):
    """``model`` wrapped in the config's top-level ``tta`` node: a LazyCall of a test-time
    augmentation wrapper that takes the model as ``model`` (e.g. ``tta =
    L(DihedralTTA)(views=8)``, :class:`freezedet.inference.DihedralTTA`), in eval mode."""
    node = cfg.get("tta", None)
    if node is None:
        raise ValueError(
            "the config has no tta node: set e.g. `tta = L(DihedralTTA)(views=8)` in the recipe "
            "(freezedet.inference.DihedralTTA) to use test-time augmentation"
        )
    node = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    if not isinstance(node, dict) or "_target_" not in node:
        raise ValueError(f"tta must be a LazyCall node, e.g. L(DihedralTTA)(views=8); got {node!r}")
    return instantiate({**node, "model": model}).eval()


def build_optimizer(cfg, model):
    """``cfg.optimizer`` over ``model``'s parameters; with ``train.clip_grad.enabled``, it clips
    the gradients before every step (:mod:`freezedet.engine.grad_clip`)."""
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    clip = cfg.train.get("clip_grad", None)
    if clip and clip.get("enabled", False):
        add_gradient_clipping(optimizer, clip)
    return optimizer


def build_trainer(cfg, model, data_loader, optimizer):
    """detectron2's ``AMPTrainer`` with ``train.amp.enabled`` on CUDA, else ``SimpleTrainer``."""
    amp = cfg.train.get("amp", {}).get("enabled", False)
    if amp and not str(cfg.train.device).startswith("cuda"):
        logger.warning("train.amp.enabled=True ignored: AMP is only used on CUDA.")
        amp = False
    return (AMPTrainer if amp else SimpleTrainer)(model, data_loader, optimizer)


def write_output_text(cfg, name: str, text: str):
    """Write ``<train.output_dir>/<name>`` atomically (main process only)."""
    if comm.is_main_process():
        PathManager.mkdirs(cfg.train.output_dir)
        atomic_write_text(text, os.path.join(cfg.train.output_dir, name))


def _environment_report() -> str:
    """detectron2's ``collect_env_info``, without the console warning torch logs when the
    report's first import of ``torch.utils.cpp_extension`` finds no CUDA toolkit ("No CUDA
    runtime is found, using CUDA_HOME=..."): the report itself says where CUDA_HOME points."""
    cpp_logger = logging.getLogger("torch.utils.cpp_extension")
    level = cpp_logger.level
    cpp_logger.setLevel(logging.ERROR)
    try:
        return collect_env_info()
    finally:
        cpp_logger.setLevel(level)


def setup_run(cfg, args):
    """detectron2's ``default_setup``, with a console a person can read: loggers (console and
    ``log.txt``, no colour codes in the file), ``env.txt`` (detectron2's environment report),
    ``config.yaml`` (the full config), known third-party warnings filtered
    (:func:`filter_known_warnings`), seeds (``train.seed``: -1 random, else seed + rank) and
    cudnn benchmark (``train.cudnn_benchmark``, training only)."""
    out = cfg.train.output_dir
    rank = comm.get_rank()
    filter_known_warnings()
    if comm.is_main_process():
        PathManager.mkdirs(out)
    for name in ("fvcore", "detectron2", "freezedet"):
        setup_logger(out, distributed_rank=rank, name=name)
    if comm.is_main_process():
        write_output_text(cfg, "env.txt", _environment_report() + "\n")
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
