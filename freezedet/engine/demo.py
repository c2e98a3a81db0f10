"""The main job behind ``make demo``: train, evaluate, summarise, draw predictions."""

import json
import logging
import os
import statistics
import time

import numpy as np
import torch

from detectron2.config import instantiate
from detectron2.data import DatasetCatalog
from detectron2.data.detection_utils import read_image
from detectron2.structures import BoxMode

from ..analysis.params import parameter_table
from ..data.catalog import dataset_names
from ..checkpoint import AtomicDetectionCheckpointer
from ..config import load_config
from .cli import argument_parser
from .defaults import build_tta_model
from .evaluate import has_tta
from .train_net import main

__all__ = ["run_demo", "summarize_run", "learning_curve", "draw_predictions"]

DEMO_CONFIG = "DeepForest/faster_rcnn_fpn_p2.py"
# The recipe's schedule shortened to fit 10 minutes on an idle 2-core CPU with the recipe's
# test-time augmentation (8 views) evaluated after the last iteration (milestones and warmup are
# fractions of the schedule, so they follow); evaluated 5 times. Measured in
# docs/results/deepforest_demo.md.
DEMO_ITERS = 360
DEMO_OPTS = (
    f"train.max_iter={DEMO_ITERS}",
    f"train.eval_period={DEMO_ITERS // 5}",
    f"train.checkpointer.period={DEMO_ITERS // 5}",
    "train.output_dir=output/demo",
)

logger = logging.getLogger(__name__)


def learning_curve(metrics_path: str) -> list:
    """The evaluations of a run, in order: ``{"iter", "minutes", "AP", "AP50", "AP75", ...}``
    (``minutes``: training wall-clock up to that iteration, evaluation excluded)."""
    clock, evals = {}, {}
    with open(metrics_path) as f:
        for line in f:
            m = json.loads(line)
            if "train_time_s" in m:
                clock[m["iteration"]] = m["train_time_s"] / 60
            if "bbox/AP" in m:
                evals[m["iteration"]] = {
                    k.split("/", 1)[1]: v for k, v in m.items() if k.startswith("bbox/")
                }
    curve = []
    for it in sorted(evals):
        before = [i for i in clock if i <= it]
        curve.append({"iter": it, "minutes": clock[max(before)] if before else None, **evals[it]})
    return curve


def summarize_run(cfg, results, wall_s: float) -> dict:
    """One dict with the numbers a user wants to see after a run."""
    metrics_path = os.path.join(cfg.train.output_dir, "metrics.json")
    with open(metrics_path) as f:
        metrics = [json.loads(line) for line in f]
    steps = [m["s_per_iter"] for m in metrics if "s_per_iter" in m]
    mem = [m["peak_mem_mb"] for m in metrics if "peak_mem_mb" in m]
    params = parameter_table(instantiate(cfg.model))["total"]
    bbox = results.get("bbox", {})
    tta = results.get("bbox_TTA", {})
    return {
        "config": cfg.train.output_dir,
        "AP": bbox.get("AP"),
        "AP50": bbox.get("AP50"),
        "AP75": bbox.get("AP75"),
        "P@0.4": bbox.get("P@0.4"),
        "R@0.4": bbox.get("R@0.4"),
        "learning_curve": learning_curve(metrics_path),
        # the recipe's test-time augmentation, evaluated after the last iteration (if it has one)
        "TTA": {k: tta.get(k) for k in ("AP", "AP50", "AP75", "P@0.4", "R@0.4")} if tta else None,
        "trainable_params": params["trainable"],
        "total_params": params["total"],
        "s_per_iter_median": statistics.median(steps) if steps else None,
        "peak_mem_mb": max(mem) if mem else None,
        "iterations": cfg.train.max_iter,
        "wall_s": wall_s,
    }


def _xyxy(annotations):
    boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in annotations]
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


@torch.no_grad()
def draw_predictions(
    cfg, weights: str, out_png: str, score_thresh: float = 0.5, dataset_name: str = None
) -> str:
    """Ground truth and predictions on a test tile (the one with the most objects, of the source
    image with the most tiles), with a legend.

    Ground truth: dashed white boxes. Predictions with score >= ``score_thresh``: solid boxes
    coloured by score, the score written on each; those of the config's test-time augmentation
    (``tta``) when it has one, whose scores count the views that agree.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    model = instantiate(cfg.model).to(cfg.train.device).eval()
    AtomicDetectionCheckpointer(model).load(weights)
    tta = has_tta(cfg)
    if tta:  # the model whose AP the demo reports last
        model = build_tta_model(cfg, model)
    if dataset_name is None:
        name = dataset_names(cfg.dataloader.test.dataset)[0]
        records = instantiate(cfg.dataloader.test.dataset)  # checked (8-bit copies included)
    else:
        name, records = dataset_name, DatasetCatalog.get(dataset_name)
    # the tile with the most objects among those of the source image most test tiles come from
    # (DeepForest records carry "source_image"; one odd image must not stand for the whole set)
    sources = [r.get("source_image") for r in records]
    common = max(set(sources), key=sources.count)
    record = max(
        (r for r, s in zip(records, sources) if s == common),
        key=lambda r: len(r.get("annotations", [])),
    )
    image = read_image(record["file_name"], format="RGB")
    fmt = cfg.model.input_format
    model_input = image if fmt == "RGB" else image[:, :, ::-1]
    tensor = torch.as_tensor(np.ascontiguousarray(model_input.transpose(2, 0, 1)))
    instances = model([{"image": tensor, "height": image.shape[0], "width": image.shape[1]}])[0][
        "instances"
    ].to("cpu")
    instances = instances[instances.scores >= score_thresh]
    gt = _xyxy(record.get("annotations", []))

    h, w = image.shape[:2]
    fig, ax = plt.subplots(figsize=(8, 8 * h / w + 0.6))
    ax.imshow(image)
    for x0, y0, x1, y1 in gt:
        ax.add_patch(
            plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="white", lw=1.2, ls="--")
        )
    cmap = plt.get_cmap("autumn_r")
    for (x0, y0, x1, y1), s in zip(instances.pred_boxes.tensor.tolist(), instances.scores.tolist()):
        color = cmap((s - score_thresh) / max(1e-6, 1 - score_thresh))
        ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=color, lw=1.6))
        ax.text(x0, y0 - 1, f"{s:.2f}", color=color, fontsize=6, va="bottom")
    handles = [
        Line2D([], [], color="white", ls="--", label=f"ground truth ({len(gt)})"),
        Line2D(
            [],
            [],
            color=cmap(1.0),
            label=f"prediction{' (TTA)' if tta else ''}, score >= {score_thresh} "
            f"({len(instances)})",
        ),
    ]
    ax.legend(handles=handles, loc="upper right", fontsize=8, facecolor="0.3", labelcolor="white")
    ax.set_title(f"{name}: {os.path.basename(record['file_name'])}", fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png


def _print_summary(s: dict):
    for e in s["learning_curve"]:
        minutes = f"{e['minutes']:.1f} min" if e.get("minutes") is not None else "—"
        print(
            f"  eval @ iter {e['iter'] + 1:>5} ({minutes:>8} of training): box AP {e['AP']:.1f} "
            f"| AP50 {e['AP50']:.1f} | P/R@0.4 {e.get('P@0.4', float('nan')):.0f}/"
            f"{e.get('R@0.4', float('nan')):.0f}"
        )
    ap = f"box AP {s['AP']:.1f} | AP50 {s['AP50']:.1f}"
    if s.get("TTA"):
        t = s["TTA"]
        print(
            f"  with test-time augmentation (after iter {s['iterations']}): box AP {t['AP']:.1f} "
            f"| AP50 {t['AP50']:.1f} | P/R@0.4 {t.get('P@0.4') or float('nan'):.0f}/"
            f"{t.get('R@0.4') or float('nan'):.0f}"
        )
        ap = f"box AP {t['AP']:.1f} | AP50 {t['AP50']:.1f} (TTA; {ap} without)"
    print(
        f"freezedet demo: {ap} | trainable "
        f"{s['trainable_params'] / 1e6:.2f}M / {s['total_params'] / 1e6:.2f}M params "
        f"({100 * s['trainable_params'] / s['total_params']:.0f}%) | {s['s_per_iter_median']:.2f} "
        f"s/iter | peak mem {s['peak_mem_mb']:.0f} MB | {s['iterations']} iters, "
        f"{s['wall_s'] / 60:.1f} min in all | {s['predictions_png']}"
    )


def demo_arguments(argv=None):
    """train_net's arguments; without ``--config-file``, the demo recipe and schedule
    (``DEMO_CONFIG`` + ``DEMO_OPTS``, the user's ``key=value`` overrides applied after them)."""
    parser = argument_parser()
    parser.set_defaults(config_file=None)
    args = parser.parse_args(argv)
    if args.config_file is None:
        args.config_file = DEMO_CONFIG
        args.opts = [*DEMO_OPTS, *args.opts]
    return args


def run_demo(argv=None) -> dict:
    """Train + evaluate a config (default: the DeepForest frozen EfficientNet-Lite0 recipe),
    print the learning curve and a one-line summary, save ``summary.json`` and
    ``demo_predictions.png``."""
    args = demo_arguments(argv)
    t0 = time.perf_counter()
    results = main(args)
    cfg = load_config(args.config_file, args.opts)
    weights = os.path.join(cfg.train.output_dir, "model_final.pth")
    png = draw_predictions(cfg, weights, os.path.join(cfg.train.output_dir, "demo_predictions.png"))
    summary = summarize_run(cfg, results, time.perf_counter() - t0)
    summary["predictions_png"] = png
    with open(os.path.join(cfg.train.output_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    _print_summary(summary)
    return summary
