"""Transfer studies as a grid of independent training runs ("Proper Reuse of Image Classification
Features Improves Object Detection", CVPR 2022; Kornblith, Shlens, Le, "Do Better ImageNet Models
Transfer Better?", CVPR 2019).

A study file is a LazyConfig ``.py`` (or ``.yaml``) defining ``study``::

    study = dict(
        # the base recipe per neck/head: one that declares a `trunk` (freezedet.config)
        recipes={"fpn": "DeepForest/faster_rcnn_fpn.py", ...},
        # trunks (keys of freezedet.config.TRUNKS; top-1 from the record unless given)
        backbones=["effl0", "effl1"],              # or {name: dict(trunk=..., overrides=[..])}
        modes=["frozen", "finetune", "scratch"],   # or {name: dict(mode=..., overrides=[..])}
        datasets={"full": dict(overrides=[]), "25pct": dict(overrides=[...], only=dict(...))},
        schedules={"150it": dict(overrides=schedule_overrides(150))},
        seeds=[0],
        overrides=["train.eval_period=50", ...],   # for every run
    )

A run is its neck's base recipe + overrides: ``trunk.name=<backbone> trunk.mode=<mode>`` (the
one way to name a trunk and a mode, as on ``tools/train_net.py``'s command line), then the
study's and every axis entry's ``overrides``. A backbone entry may name its trunk (``trunk``,
default: its key), a mode entry its mode (``mode``, default: its key), so that two entries can
share one, e.g. ``{"frozen_lr2": dict(mode="frozen", overrides=["optimizer.lr=0.02"])}``. A
recipe that fixes its trunk and mode (adapters, AlignDet...: no ``trunk`` in the file) is a neck
entry that says which: ``{"fpn+adapters": dict(recipe="DeepForest/faster_rcnn_fpn_effl0_frozen_
parallel_adapters.py", fixed=dict(backbone="effl0", mode="frozen"))}``; it is combined only with
that backbone and mode, and gets no ``trunk.*`` overrides.

``datasets`` and ``schedules`` default to the recipe's own (key ``"default"``), ``seeds`` to
``[0]``. Every axis entry may carry ``overrides`` (``key=value`` strings for
``tools/train_net.py``) and ``only`` (``{axis: [allowed keys]}``: the entry is combined only
with those). The grid is expanded in a fixed order into :class:`Run` s with stable ids,
``{neck}-{backbone}-{mode}-{dataset}-{schedule}-s{seed}``, which name the run directories
``<out>/runs/<id>``.

The runner starts one ``tools/train_net.py`` process per run. A run directory holds
``manifest.json`` (written atomically: axes, command, status, exit code, wall time, log tail),
``train.log`` and the trainer's outputs; a ``DONE`` marker next to ``eval_results.json`` means
finished, and such runs are skipped. A run with a checkpoint but no marker is continued with
``--resume``; a failed run is recorded and the study goes on. ``shard=(i, n)`` runs every n-th
run starting at i, so n machines (or array jobs) share one output directory without overlap.
"""

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ..utils.file_io import atomic_write_text

__all__ = [
    "AXES",
    "Run",
    "load_study",
    "expand_runs",
    "select_shard",
    "parse_shard",
    "schedule_overrides",
    "run_command",
    "run_study",
    "is_finished",
    "read_manifest",
]

# the grid's axes, in the order they appear in run ids
AXES = ("neck", "backbone", "mode", "dataset", "schedule", "seed")
# the order runs are started in: the main grid (first dataset, schedule, seed) before the extra
# points, and per neck all backbones of a mode together, so that an interrupted study already
# holds complete AP-vs-top-1 series
_RUN_ORDER = ("dataset", "schedule", "seed", "neck", "mode", "backbone")
DONE_MARKER = "DONE"
MANIFEST = "manifest.json"


@dataclass
class Run:
    """One training run of a study: its place in the grid and how to start it."""

    run_id: str
    recipe: str
    overrides: List[str]
    axes: Dict[str, str]
    top1: Optional[float] = None
    meta: Dict[str, object] = field(default_factory=dict)


def schedule_overrides(
    max_iter: int, warmup_iters: int = 50, milestones: Sequence[float] = (8 / 9, 17 / 18)
) -> List[str]:
    """Overrides that set ``train.max_iter`` and rescale the recipes' step schedule
    (``configs/common/schedule.py``: x0.1 at each of ``milestones``, fractions of training,
    linear warmup) to it. The default is ``DEFAULT_MILESTONES`` of that file, what the CPU
    recipes use; pass ``REF_72EP`` (2/3, 17/18) for recipes on the reference milestones.

    Recipes build the LR schedule for their own length when the file is read, so changing
    ``train.max_iter`` alone would leave the steps where they were.
    """
    if max_iter < 18:
        raise ValueError(
            f"schedule_overrides({max_iter}): the two LR steps need max_iter >= 18; for shorter "
            "runs override train.max_iter alone (the recipe's schedule is then still warming up)"
        )
    steps = ",".join(str(int(max_iter * m)) for m in milestones)
    return [
        f"train.max_iter={max_iter}",
        f"lr_multiplier.scheduler.num_updates={max_iter}",
        f"lr_multiplier.scheduler.milestones=[{steps}]",
        f"lr_multiplier.warmup_length={min(1.0, warmup_iters / max_iter)}",
    ]


def _to_plain(x):
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(x, (DictConfig, ListConfig)):
        return OmegaConf.to_container(x, resolve=True)
    return x


def _entries(study: dict, axis: str, path: str) -> Dict[str, dict]:
    """An axis as ``{key: {"overrides": [...], "only": {...}, ...}}`` (lists become keys)."""
    key = {"neck": "recipes", "backbone": "backbones", "mode": "modes", "dataset": "datasets"}
    key = key.get(axis, axis + "s")
    if key not in study:
        if axis in ("dataset", "schedule"):  # optional: the recipe's own data and schedule
            return {"default": {}}
        if axis == "seed":
            return {"0": {"overrides": ["train.seed=0"]}}
        raise KeyError(f"{path}: study has no '{key}' (axis {axis!r}); keys: {sorted(study)}")
    value = study[key]
    if axis == "neck":
        value = {k: (dict(recipe=v) if isinstance(v, str) else v) for k, v in value.items()}
        for k, v in value.items():
            fixed = v.get("fixed")
            if fixed is not None:
                if sorted(fixed) != ["backbone", "mode"]:
                    raise ValueError(
                        f"{path}: study.recipes.{k}.fixed must be dict(backbone=..., mode=...)"
                        f" (the trunk and mode its recipe fixes), got {fixed!r}"
                    )
                only = dict(v.get("only") or {})
                only.update(backbone=[fixed["backbone"]], mode=[fixed["mode"]])
                v["only"] = only
    if axis in ("backbone", "mode") and isinstance(value, dict):
        for k, v in value.items():
            if "recipe" in (v or {}):
                raise ValueError(
                    f"{path}: study.{key}.{k}: 'recipe' is no longer an axis entry's key: a "
                    f"{axis} is the override trunk.{'name' if axis == 'backbone' else 'mode'}=; "
                    "a recipe that fixes its trunk is a neck entry with fixed=dict(backbone=..., "
                    "mode=...)"
                )
    if isinstance(value, (list, tuple)):
        value = {str(v): {} for v in value}
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{path}: study.{key} must be a non-empty list or dict, got {value!r}")
    out = {}
    for k, v in value.items():
        v = dict(v or {})
        if axis == "seed":
            if not str(k).lstrip("-").isdigit():
                raise ValueError(f"{path}: study.seeds entry {k!r} is not an integer")
            v.setdefault("overrides", [f"train.seed={int(k)}"])
        if not re.fullmatch(r"[A-Za-z0-9._+]+", str(k)):
            raise ValueError(
                f"{path}: study.{key} key {k!r}: use letters, digits, '.', '_', '+' only "
                "(it becomes part of a directory name)"
            )
        bad = [o for o in v.get("overrides", []) if "=" not in o]
        if bad:
            raise ValueError(f"{path}: study.{key}.{k}.overrides {bad}: not key=value")
        out[str(k)] = v
    return out


def load_study(path: str) -> dict:
    """Read a study file (LazyConfig ``.py``/``.yaml``) and return its ``study`` dict, plain
    Python containers, with ``path`` kept under ``"_path"``."""
    from detectron2.config import LazyConfig

    if not os.path.exists(path):
        raise FileNotFoundError(f"study file {path!r} does not exist")
    cfg = LazyConfig.load(path)
    if "study" not in cfg:
        raise KeyError(f"{path}: defines no 'study' (found {sorted(cfg.keys())})")
    study = _to_plain(cfg.study)
    if "recipes" not in study:
        raise KeyError(f"{path}: study has no 'recipes' ({{neck: base recipe file}})")
    recipes = [r if isinstance(r, str) else r.get("recipe", "") for r in study["recipes"].values()]
    templated = [r for r in recipes if "{" in r]
    if templated:
        raise ValueError(
            f"{path}: study.recipes {templated}: file-name templates are gone; name the base "
            "recipe (e.g. DeepForest/faster_rcnn_fpn.py): the trunk and the mode of a run are "
            "the overrides trunk.name= / trunk.mode= that the study adds"
        )
    study["_path"] = os.path.abspath(path)
    return study


def _resolve_recipe(recipe: str, study_path: str) -> str:
    """A path (as given, or relative to the study file) made absolute; otherwise a config name
    shipped with freezedet (``"DeepForest/....py"``), checked here so typos fail early."""
    for candidate in (recipe, os.path.join(os.path.dirname(study_path), recipe)):
        if os.path.exists(candidate):
            return os.path.abspath(candidate)
    from ..model_zoo import get_config_file

    try:
        return get_config_file(recipe)
    except Exception as e:
        raise FileNotFoundError(
            f"{study_path}: recipe {recipe!r} is neither a file nor a config shipped with "
            f"freezedet ({e})"
        ) from e


def _record(trunk: str) -> dict:
    """A trunk record's metadata for a run: its model name and published top-1 (nothing for a
    name that is no record: the run then fails at load time, naming the valid trunks)."""
    from ..config import TRUNKS

    record = TRUNKS.get(trunk)
    return {} if record is None else dict(model=record.model_name, top1=record.top1)


def expand_runs(study: dict) -> List[Run]:
    """The study's grid as runs in a fixed order (dataset, schedule, seed, neck, mode, backbone;
    entries in file order), with ``only`` restrictions applied."""
    path = study.get("_path", "<study>")
    axes = {axis: _entries(study, axis, path) for axis in AXES}
    for axis, entries in axes.items():
        for k, v in entries.items():
            for other, allowed in (v.get("only") or {}).items():
                if other not in AXES:
                    raise KeyError(f"{path}: {axis} {k!r}: only.{other}: axes are {AXES}")
                unknown = [a for a in allowed if str(a) not in axes[other]]
                if unknown:
                    raise KeyError(
                        f"{path}: {axis} {k!r}: only.{other} names {unknown}, not in "
                        f"{list(axes[other])}"
                    )
    runs = [[]]
    for axis in _RUN_ORDER:
        runs = [r + [(axis, k)] for r in runs for k in axes[axis]]
    runs = [sorted(r, key=lambda item: AXES.index(item[0])) for r in runs]
    out = []
    common = list(study.get("overrides", []))
    for combo in runs:
        choice = dict(combo)
        if not all(
            choice[other] in [str(a) for a in allowed]
            for axis, k in combo
            for other, allowed in (axes[axis][k].get("only") or {}).items()
        ):
            continue
        neck, backbone = axes["neck"][choice["neck"]], axes["backbone"][choice["backbone"]]
        recipe = _resolve_recipe(neck["recipe"], path)
        trunk = str(backbone.get("trunk", choice["backbone"]))
        selection = []
        if neck.get("fixed") is None:
            mode = str(axes["mode"][choice["mode"]].get("mode", choice["mode"]))
            selection = [f"trunk.name={trunk}", f"trunk.mode={mode}"]
        overrides = (
            selection
            + common
            + [o for axis, k in combo for o in axes[axis][k].get("overrides", [])]
        )
        run_id = "-".join(choice[a] if a != "seed" else f"s{choice[a]}" for a in AXES).replace(
            "+", "_"
        )
        meta = dict(_record(trunk), **backbone)
        top1 = meta.pop("top1", None)
        meta = {k: v for k, v in meta.items() if k not in ("overrides", "only", "trunk")}
        out.append(Run(run_id, recipe, overrides, choice, top1, meta))
    ids = [r.run_id for r in out]
    assert len(set(ids)) == len(ids), f"{path}: run ids collide: {ids}"
    return out


def parse_shard(text: str) -> Tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``."""
    m = re.fullmatch(r"(\d+)/(\d+)", text or "")
    if not m or not int(m.group(1)) < int(m.group(2)):
        raise ValueError(f"--shard {text!r}: expected i/n with 0 <= i < n, e.g. 0/4")
    return int(m.group(1)), int(m.group(2))


def select_shard(runs: Sequence[Run], shard: Tuple[int, int]) -> List[Run]:
    """Every n-th run from i: shards are disjoint and together cover the study."""
    i, n = shard
    return list(runs[i::n])


def run_dir(output_dir: str, run: Run) -> str:
    return os.path.join(output_dir, "runs", run.run_id)


def is_finished(directory: str) -> bool:
    """A run is finished when the runner marked it done and its evaluation results exist."""
    return os.path.exists(os.path.join(directory, DONE_MARKER)) and os.path.exists(
        os.path.join(directory, "eval_results.json")
    )


def read_manifest(directory: str) -> dict:
    path = os.path.join(directory, MANIFEST)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _write_manifest(directory: str, manifest: dict):
    atomic_write_text(
        json.dumps(manifest, indent=2, sort_keys=True), os.path.join(directory, MANIFEST)
    )


def run_command(
    run: Run,
    directory: str,
    *,
    python: str = sys.executable,
    num_gpus: int = 1,
    resume: bool = False,
    extra_args: Sequence[str] = (),
) -> List[str]:
    """The training command line of one run, writing into ``directory``: ``python -m
    freezedet.engine.launch`` (``tools/train_net.py``'s module, so an installed package needs no
    source checkout)."""
    cmd = [python, "-m", "freezedet.engine.launch", "--config-file", run.recipe]
    cmd += ["--num-gpus", str(num_gpus)] + list(extra_args)
    if resume:
        cmd.append("--resume")
    return cmd + list(run.overrides) + [f"train.output_dir={directory}"]


def _tail(path: str, n: int = 40) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def run_study(
    study: dict,
    output_dir: str,
    *,
    shard: Tuple[int, int] = (0, 1),
    python: str = sys.executable,
    num_gpus: int = 1,
    extra_args: Sequence[str] = (),
    log=print,
) -> Dict[str, List[str]]:
    """Run this shard's unfinished runs one after another (one process each).

    Returns ``{"done": [...], "skipped": [...], "failed": [...]}`` (run ids).
    """
    runs = select_shard(expand_runs(study), shard)
    summary = {"done": [], "skipped": [], "failed": []}
    for k, run in enumerate(runs):
        directory = run_dir(output_dir, run)
        if is_finished(directory):
            summary["skipped"].append(run.run_id)
            log(f"[{k + 1}/{len(runs)}] {run.run_id}: finished before, skipped")
            continue
        os.makedirs(directory, exist_ok=True)
        resume = os.path.exists(os.path.join(directory, "last_checkpoint"))
        cmd = run_command(
            run, directory, python=python, num_gpus=num_gpus, resume=resume, extra_args=extra_args
        )
        before = read_manifest(directory)
        manifest = dict(
            asdict(run),
            study=study.get("_path"),
            command=shlex.join(cmd),
            host=socket.gethostname(),
            status="running",
            resumed=resume,
            # a killed runner leaves "running" behind: attempts counts every start
            attempts=before.get("attempts", 0) + 1,
            first_start_time=before.get("first_start_time", before.get("start_time", time.time())),
            start_time=time.time(),
        )
        _write_manifest(directory, manifest)
        log(f"[{k + 1}/{len(runs)}] {run.run_id}: {'resuming' if resume else 'starting'}")
        t0 = time.perf_counter()
        log_file = os.path.join(directory, "train.log")
        with open(log_file, "a") as f:
            code = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)
        manifest.update(returncode=code, wall_s=time.perf_counter() - t0, end_time=time.time())
        results = os.path.join(directory, "eval_results.json")
        if code == 0 and os.path.exists(results):
            manifest["status"] = "done"
            _write_manifest(directory, manifest)
            atomic_write_text("", os.path.join(directory, DONE_MARKER))
            summary["done"].append(run.run_id)
            log(f"    done in {manifest['wall_s']:.0f} s")
        else:
            why = f"exit code {code}" if code else "no eval_results.json"
            manifest.update(status="failed", error=why, log_tail=_tail(log_file))
            _write_manifest(directory, manifest)
            summary["failed"].append(run.run_id)
            log(f"    FAILED ({why}); log: {log_file}\n" + _tail(log_file, 8))
    return summary
