"""Measurement helpers shared by the benchmark scripts (run them as ``python benchmarks/x.py``).

Every benchmark measures its variants side by side in one process, interleaved step by step
(variant A, B, C, A, B, C, ...), so that a busy or throttling machine slows all of them alike,
and reports medians and ratios. Memory is measured two ways:

- **saved MB**: bytes of the distinct tensor storages autograd keeps for backward during one
  training forward (``torch.autograd.graph.saved_tensors_hooks``): exact and deterministic;
- **peak MB**: peak memory of a fresh subprocess that builds the variant and runs a few training
  steps: the CUDA allocator's peak on GPU, the peak RSS (``ru_maxrss``) on CPU, which includes
  the Python/torch baseline shared by all variants; **step peak MB** is the peak reached during
  the training steps (peak reset after setup: ``/proc/self/clear_refs``) minus the memory in use
  just before the first step (model, data and libraries excluded).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Sequence

import torch

import detectron2.data.transforms as T
from detectron2.config import instantiate
from detectron2.data import DatasetCatalog, DatasetMapper
from detectron2.utils.events import EventStorage

import freezedet  # noqa: F401  (registers datasets and components)
from freezedet.engine import load_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parser(description: str):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--no-rss", action="store_true", help="skip the subprocess peak-memory runs")
    p.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (torch.set_num_threads)"
    )
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # internal: one variant
    return _SetsThreads(p)


class _SetsThreads:
    """The parser, whose ``parse_args`` also applies ``--threads``."""

    def __init__(self, p):
        self._p = p

    def __getattr__(self, name):
        return getattr(self._p, name)

    def parse_args(self, *a):
        args = self._p.parse_args(*a)
        torch.set_num_threads(args.threads)
        return args


def deepforest_batches(
    n: int, batch_size: int = 2, image_format: str = "RGB", size: int = None
) -> List[list]:
    """``n`` fixed training batches of DeepForest train tiles (400 px, or resized to ``size``)."""
    dicts = DatasetCatalog.get("deepforest_train")
    augs = [T.Resize((size, size))] if size else []
    mapper = DatasetMapper(is_train=True, augmentations=augs, image_format=image_format)
    items = [mapper(dict(d)) for d in dicts[: n * batch_size]]
    return [items[i * batch_size : (i + 1) * batch_size] for i in range(n)]


def build_from_config(config: str, overrides: Sequence[str] = (), device: str = "cpu"):
    """A model from a freezedet config (random init: speed does not depend on the weights)."""
    cfg = load_config(config, list(overrides))
    torch.manual_seed(0)
    return zero_init_residuals(instantiate(cfg.model)).to(device), cfg


def zero_init_residuals(model):
    """Random-init ResNets with identity frozen statistics blow up (activations double per
    block, RPN deltas overflow); starting every bottleneck as the identity keeps them finite.
    The compute, and so the timing, is unchanged. No-op for models without bottlenecks."""
    for name, m in model.named_modules():
        if name.endswith("conv3") and getattr(m, "norm", None) is not None:
            m.norm.weight.data.zero_()
    return model


def train_step_fn(model, batch=None) -> Callable[[], float]:
    """One SGD training step (forward, backward, update) on ``batch`` (or the batch passed)."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-4, momentum=0.9)

    def step(other=None):
        model.train()
        with EventStorage():
            loss = sum(model(batch if other is None else other).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def saved_mb(model, batch) -> float:
    """MB of distinct storages autograd saves for backward in one training forward."""
    seen = {}

    def pack(t):
        s = t.untyped_storage()
        seen[(s.data_ptr(), t.device)] = s.nbytes()
        return t

    model.train()
    with EventStorage(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = sum(model(batch).values())
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(seen.values()) / 2**20


def sync(device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def interleaved(fns: Dict[str, Callable], warmup: int, repeats: int, device: str = "cpu"):
    """Median seconds per call of each function, calls interleaved round-robin."""
    times = {k: [] for k in fns}
    for r in range(warmup + repeats):
        for name, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            if r >= warmup:
                times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def peak_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_memory(script: str, variant: str, extra: Sequence[str] = ()) -> Dict[str, float]:
    """Run ``script --child variant`` in a fresh process (see :func:`run_child`); returns
    ``{"peak_mb", "delta_mb"}``."""
    cmd = [sys.executable, script, "--child", variant, "--threads", str(torch.get_num_threads())]
    cmd += list(extra)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO).stdout
    return json.loads(out.strip().splitlines()[-1])


def current_mb(device: str) -> float:
    """Memory in use now: CUDA allocated, or the resident set size."""
    if device.startswith("cuda"):
        return torch.cuda.memory_allocated() / 2**20
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_child(device: str, setup: Callable[[], Callable], steps: int = 2):
    """In a ``--child`` process: ``setup()`` builds a variant and returns its step function; run
    ``steps`` steps and print peak memory and the peak's excess over the memory after setup."""
    step = setup()
    before = current_mb(device)
    _reset_peak(device)
    for _ in range(steps):
        step()
    peak = step_peak_mb(device)
    print(json.dumps({"peak_mb": peak_mb(device), "delta_mb": peak - before}))


def _reset_peak(device: str):
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    else:  # Linux: writing 5 to clear_refs resets the process's peak RSS (VmHWM)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")


def step_peak_mb(device: str) -> float:
    """Peak memory since :func:`_reset_peak`: CUDA allocator peak, or VmHWM on Linux."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    with open("/proc/self/status") as f:
        hwm = [line for line in f if line.startswith("VmHWM:")][0]
    return int(hwm.split()[1]) / 1024


def table(rows: List[Sequence], headers: Sequence[str]) -> str:
    """A markdown table."""
    fmt = [[f"{v:.3g}" if isinstance(v, float) else str(v) for v in r] for r in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in fmt]
    return "\n".join(lines)


def header(title: str, args, timing: str = None) -> str:
    timing = timing or f"{args.warmup} warm-up + {args.repeats} timed steps (medians, interleaved)"
    return (
        f"## {title}\n\ncommand: `python {' '.join(sys.argv)}`  \n"
        f"device: {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"batch {args.batch_size}, {timing}\n"
    )
