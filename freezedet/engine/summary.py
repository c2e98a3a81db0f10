"""What a run will do, said at its start: the choices a recipe makes for the user (data, image
size, classes, anchors, detections per image, schedule), read from the config, plus checks that
the model and the data agree (classes; a trunk's feature cache and the train augmentations).
Everything here reads the config; nothing changes it."""

import logging
import math
from typing import List, Optional, Sequence

from omegaconf import ListConfig

from detectron2.config import instantiate
from detectron2.data import MetadataCatalog

from ..data.catalog import dataset_names
from ..utils.errors import UserValueError

__all__ = [
    "check_cacheable_augmentations",
    "check_classes",
    "check_feature_cache_config",
    "check_same_classes",
    "describe_lr_schedule",
    "describe_run",
    "model_detections_per_image",
    "model_num_classes",
    "schedule_points",
]

# a scheduler is evaluated at this many points, then change points are located exactly
_SCHEDULE_SAMPLES = 2000


def _short(target) -> str:
    return target.rsplit(".", 1)[-1] if isinstance(target, str) else target.__name__


def _call_repr(node) -> str:
    """``Name(arg=value, ...)`` of a LazyCall node, arguments in config order."""
    if not hasattr(node, "items") or "_target_" not in node:
        return str(node)
    args = ", ".join(f"{k}={v}" for k, v in node.items() if k != "_target_")
    return f"{_short(node._target_)}({args})"


def _describe_data(split, loader) -> List[str]:
    if loader is None or "dataset" not in loader:
        return []
    dataset = loader.dataset
    names = ", ".join(dataset_names(dataset)) or _short(dataset._target_)
    options = [
        f"{k}={dataset[k]}" + (" (not set)" if dataset[k] is None else "")
        for k in ("json_file", "image_root", "verify_images", "skip_bad_images", "high_bit_depth")
        if k in dataset
    ]
    lines = [f"{split} data: {names}" + (f" ({', '.join(options)})" if options else "")]
    mapper = loader.get("mapper", None)
    if mapper is not None and "augmentations" in mapper:
        augs = mapper.augmentations
        # a list of augmentations, or one call that builds them (e.g. build_lsj_augmentations)
        augs = [_call_repr(a) for a in augs] if isinstance(augs, ListConfig) else [_call_repr(augs)]
        resize = any(w in a for a in augs for w in ("Resize", "Crop", "lsj"))
        lines.append(
            f"{split} images: "
            + ("; ".join(augs) if augs else "as read")
            + ("" if resize else " (no resizing: images go in at their file size)")
        )
    if split == "train" and "total_batch_size" in loader:
        lines[0] += f", batch {loader.total_batch_size}"
    return lines


def model_num_classes(cfg) -> Optional[int]:
    """``model.roi_heads.num_classes`` (R-CNN) or ``model.num_classes`` (RetinaNet), if any."""
    model = cfg.model
    heads = model.get("roi_heads", None)
    value = heads.get("num_classes", None) if heads is not None else model.get("num_classes")
    return value if isinstance(value, int) else None


def model_detections_per_image(cfg) -> Optional[int]:
    """The most detections the model outputs per image (its box predictors' smallest
    ``test_topk_per_image``, or RetinaNet's ``max_detections_per_image``), if set in the config."""
    model = cfg.model
    heads = model.get("roi_heads", None)
    if heads is None:
        value = model.get("max_detections_per_image", None)
        return value if isinstance(value, int) else None
    predictors = heads.get("box_predictors", None) or [heads.get("box_predictor", None)]
    values = [p.get("test_topk_per_image", None) for p in predictors if p is not None]
    values = [v for v in values if isinstance(v, int)]
    return min(values) if values else None


def _anchors(cfg) -> Optional[str]:
    model = cfg.model
    rpn = model.get("proposal_generator", None)
    gen = (rpn or model).get("anchor_generator", None)
    if gen is None or "sizes" not in gen:
        return None
    ratios = gen.get("aspect_ratios", None)
    return f"anchors: sizes {list(gen.sizes)} (px, one list per level), aspect ratios {ratios}"


def _first_true(lo: int, hi: int, pred) -> int:
    """Smallest i in (lo, hi] with pred(i), for pred False up to some point and True after."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if pred(mid) else (mid, hi)
    return hi


def schedule_points(scheduler, max_iter: int):
    """Effective LR-multiplier schedule over ``max_iter`` iterations, as detectron2's
    ``LRMultiplier`` applies a fvcore ``ParamScheduler`` (evaluated at ``iter / max_iter``).

    The scheduler is sampled at most ``_SCHEDULE_SAMPLES`` times, then each change point is
    located exactly by bisection (assuming at most one jump between two samples).

    Returns:
        dict: ``warmup`` (iterations while the multiplier rises from its start), ``start`` /
        ``peak`` / ``end`` values, ``steps`` ([(first iteration, multiplier)] where it jumps)
        and ``smooth`` (True if it changes between most samples, e.g. cosine: no steps listed).
    """

    def f(i):
        return float(scheduler(i / max_iter))

    stride = max(1, math.ceil(max_iter / _SCHEDULE_SAMPLES))
    its = list(range(0, max_iter, stride))
    values = [f(i) for i in its]
    warm = 0
    while warm + 1 < len(values) and values[warm + 1] > values[warm] + 1e-12:
        warm += 1
    warmup = 0
    if warm:  # the first iteration that does not rise any more: the end of warmup
        hi = min(its[warm] + stride, max_iter - 1)
        warmup = _first_true(its[warm - 1], hi, lambda i: f(i + 1) <= f(i) + 1e-12)
    rest = list(zip(its[warm:], values[warm:]))
    changes = []
    for (j, u), (i, v) in zip(rest, rest[1:]):
        if abs(v - u) > 1e-9:
            first = _first_true(j, i, lambda k, u=u: abs(f(k) - u) > 1e-9)
            changes.append((first, f(first)))
    smooth = len(changes) > 20
    return {
        "warmup": warmup,
        "start": values[0],
        "peak": f(warmup),
        "steps": [] if smooth else changes,
        "smooth": smooth,
        "end": f(max_iter - 1),
    }


def describe_lr_schedule(scheduler, max_iter: int, base_lr: Optional[float] = None) -> str:
    """One line: the effective warmup and step iterations of ``scheduler`` at ``max_iter``."""
    p = schedule_points(scheduler, max_iter)
    parts = [f"LR {base_lr} ×" if base_lr is not None else "LR multiplier:"]
    if p["warmup"]:
        parts.append(
            f"warmup over the first {p['warmup']} iterations ({p['start']:.3g} → "
            f"{p['peak']:.3g}),"
        )
    else:
        parts.append(f"{p['start']:.3g} from iteration 0,")
    if p["smooth"]:
        parts.append(f"then a smooth decay to {p['end']:.3g} at iteration {max_iter}")
    elif p["steps"]:
        steps = ", ".join(f"×{v:.3g} from iteration {i}" for i, v in p["steps"])
        parts.append(f"then {steps}")
    else:
        parts.append("then constant")
    parts.append(
        f"(of train.max_iter={max_iter}; warmup and steps are stored as fractions of max_iter, "
        "so changing train.max_iter moves them proportionally)"
    )
    return " ".join(parts)


def describe_run(cfg, *, eval_only: bool = False) -> List[str]:
    """Lines saying what the run will do (see the module docstring)."""
    lines = []
    if not eval_only:
        lines += _describe_data("train", cfg.dataloader.get("train", None))
    lines += _describe_data("test", cfg.dataloader.get("test", None))
    classes = model_num_classes(cfg)
    lines.append(f"model: {_short(cfg.model._target_)}, num_classes={classes}")
    anchors = _anchors(cfg)
    if anchors:
        lines.append(anchors)
    evaluator = cfg.dataloader.get("evaluator", None)
    dets = model_detections_per_image(cfg)
    line = f"detections per image: model outputs at most {dets}"
    if evaluator is not None and "max_dets_per_image" in evaluator:
        value = evaluator.max_dets_per_image
        line += f", AP counts {value}" + (
            " (from the test set's busiest image when evaluation starts)" if value == "auto" else ""
        )
    elif evaluator is not None:
        line += ", AP counts COCO's 100"
    lines.append(line)
    if not eval_only:
        t = cfg.train
        lines.append(
            describe_lr_schedule(instantiate(cfg.lr_multiplier), t.max_iter, cfg.optimizer.lr)
        )
        lines.append(
            f"checkpoint every {t.checkpointer.period} iterations; evaluation "
            + (f"every {t.eval_period} iterations" if t.eval_period else "at the end")
        )
    tta = cfg.get("tta", None)
    if tta is not None:
        when = "after" if eval_only else "after the last iteration, after"
        lines.append(
            f"test-time augmentation: {_call_repr(tta)}, evaluated {when} the plain model "
            "(results keyed <task>_TTA)"
        )
    return lines


def check_classes(cfg, dataset_cfg, names: Optional[Sequence[str]] = None):
    """Raise if the model's class count differs from the classes of an instantiated dataset.

    A dataset with more classes than the model would make class ``num_classes`` the background
    (silently) and crash on the next; fewer classes waste outputs and usually mean the wrong
    json or an inherited recipe value.

    Args:
        cfg: the config (for the model's ``num_classes``).
        dataset_cfg: the dataset LazyCall node (its ``names`` or ``name``), already instantiated
            so that its metadata is registered.
        names (list[str] or None): dataset names instead of reading them from ``dataset_cfg``.
    """
    num_classes = model_num_classes(cfg)
    names = list(names) if names is not None else dataset_names(dataset_cfg)
    if num_classes is None or not names:
        return
    classes = MetadataCatalog.get(names[0]).get("thing_classes", None)
    if classes is None or len(classes) == num_classes:
        return
    key = "model.roi_heads.num_classes" if "roi_heads" in cfg.model else "model.num_classes"
    shown = ", ".join(classes[:10]) + (" ..." if len(classes) > 10 else "")
    raise UserValueError(
        f"{key}={num_classes} but dataset {names[0]!r} has {len(classes)} classes ({shown}); "
        f"set {key}={len(classes)}."
    )


def check_same_classes(cfg):
    """Compare the class names of the train and test datasets (when both are registered in this
    process): the same names in another order are an error (every AP would be computed against
    another class's predictions); other names are a warning (e.g. a deliberate evaluation on
    another dataset)."""
    loaders = [cfg.dataloader.get(k, None) for k in ("train", "test")]
    names = [dataset_names(x.get("dataset", None)) if x is not None else [] for x in loaders]
    if not all(names):
        return
    train, test = (MetadataCatalog.get(n[0]).get("thing_classes", None) for n in names)
    if train is None or test is None or list(train) == list(test):
        return
    message = (
        f"train dataset {names[0][0]!r} has classes {list(train)[:10]}, test dataset "
        f"{names[1][0]!r} has {list(test)[:10]}"
    )
    if sorted(train) == sorted(test):
        raise UserValueError(
            f"{message}: the same classes in another order, so class indices would not "
            "correspond. Use jsons with the same categories (same ids and names)."
        )
    logging.getLogger("freezedet").warning(f"{message}: evaluating on other classes.")


# deterministic up to a finite choice: cacheable
_CACHEABLE = ("RandomFlip", "RandomRot90", "NoOpAugmentation")


def check_cacheable_augmentations(augmentations) -> None:
    """Raise ``ValueError`` naming the first augmentation that makes inputs vary without end.

    Allowed: flips, 90-degree rotations, fixed ``Resize``, ``ResizeShortestEdge`` with one size or
    a finite "choice" of sizes (each tile then has one cached view per size and symmetry).
    ``augmentations`` are objects or LazyCall configs of ``detectron2.data.transforms``.
    """
    for aug in augmentations or []:
        target = aug.get("_target_") if hasattr(aug, "get") else type(aug)
        name = getattr(target, "__name__", str(target))
        args = aug if hasattr(aug, "get") else vars(aug)
        if name in _CACHEABLE or name == "Resize":
            continue
        if name == "ResizeShortestEdge":
            lengths = args.get("short_edge_length")
            lengths = [lengths] if isinstance(lengths, int) else list(lengths)
            style = args.get("sample_style", "range")
            if len(set(lengths)) == 1 or style == "choice":
                continue
            why = f"short_edge_length={lengths}, sample_style={style!r} samples a new size"
        else:
            why = "it is random (crop, scale jitter or photometric) or unknown to the cache check"
        raise UserValueError(
            f"feature cache refused: train augmentation {name} ({why}), so trunk inputs never "
            "repeat and cached features would never be reused. Use only flips, 90-degree "
            "rotations and a finite choice of sizes, or add the override "
            f"{_NO_CACHE_OVERRIDE}."
        )


# the override that removes a recipe's feature cache (Hydra's override grammar: null, not None)
_NO_CACHE_OVERRIDE = "model.backbone.bottom_up.feature_cache=null"


def check_feature_cache_config(cfg) -> None:
    """Build-time check of a LazyConfig: a trunk with a ``feature_cache`` needs a frozen trunk
    and a finite train pipeline (:func:`check_cacheable_augmentations`)."""
    trunks = [n for n in _lazy_nodes(cfg.model) if n.get("feature_cache") is not None]
    if not trunks:
        return
    for t in trunks:
        if isinstance(t.get("feature_cache"), str):
            raise UserValueError(
                f"feature_cache={t.get('feature_cache')!r} is a string: key=value overrides "
                f"use Hydra's syntax, so no cache is {_NO_CACHE_OVERRIDE} (null, not None)."
            )
        if t.get("mode", "frozen") != "frozen":
            raise UserValueError(
                f"feature cache refused: trunk mode={t.get('mode')!r}; only a frozen trunk "
                "computes the same features in every epoch. Add the override "
                f"{_NO_CACHE_OVERRIDE} (the study files' finetune mode entries carry it)."
            )
    mapper = cfg.dataloader.train.get("mapper")
    target = mapper.get("_target_") if mapper is not None else None
    if getattr(target, "__name__", None) != "DatasetMapper":
        raise UserValueError(
            f"feature cache refused: train mapper {target} is not detectron2's DatasetMapper, "
            "whose augmentations the cache check understands."
        )
    check_cacheable_augmentations(mapper.get("augmentations"))


def _lazy_nodes(node):
    if hasattr(node, "keys"):
        if "_target_" in node:
            yield node
        for k in node.keys():
            yield from _lazy_nodes(node[k])
    elif isinstance(node, (list, tuple)) or type(node).__name__ == "ListConfig":
        for v in node:
            yield from _lazy_nodes(v)
