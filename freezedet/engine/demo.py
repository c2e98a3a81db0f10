"""The main job behind ``make demo``: train, evaluate, summarise, draw predictions."""

import json
import logging
import os
import statistics
import time

import cv2
import numpy as np
import torch

from detectron2.config import instantiate
from detectron2.data import MetadataCatalog
from detectron2.data.detection_utils import read_image
from detectron2.utils.visualizer import Visualizer

from ..analysis.params import parameter_table
from ..data.catalog import dataset_names
from .checkpoint import AtomicDetectionCheckpointer
from .train_loop import argument_parser, load_config, main

__all__ = ["run_demo", "summarize_run", "draw_predictions"]

logger = logging.getLogger(__name__)


def summarize_run(cfg, results, wall_s: float) -> dict:
    """One dict with the numbers a user wants to see after a run."""
    with open(os.path.join(cfg.train.output_dir, "metrics.json")) as f:
        metrics = [json.loads(line) for line in f]
    steps = [m["s_per_iter"] for m in metrics if "s_per_iter" in m]
    mem = [m["peak_mem_mb"] for m in metrics if "peak_mem_mb" in m]
    params = parameter_table(instantiate(cfg.model))["total"]
    bbox = results.get("bbox", {})
    return {
        "config": cfg.train.output_dir,
        "AP": bbox.get("AP"),
        "AP50": bbox.get("AP50"),
        "AP75": bbox.get("AP75"),
        "trainable_params": params["trainable"],
        "total_params": params["total"],
        "s_per_iter_median": statistics.median(steps) if steps else None,
        "peak_mem_mb": max(mem) if mem else None,
        "iterations": cfg.train.max_iter,
        "wall_s": wall_s,
    }


@torch.no_grad()
def draw_predictions(cfg, weights: str, out_png: str, score_thresh: float = 0.5) -> str:
    """Draw predictions (green) and ground truth (thin white) on the val image with most boxes."""
    model = instantiate(cfg.model).to(cfg.train.device).eval()
    AtomicDetectionCheckpointer(model).load(weights)
    name = dataset_names(cfg.dataloader.test.dataset)[0]
    records = instantiate(cfg.dataloader.test.dataset)  # checked (8-bit copies included)
    record = max(records, key=lambda r: len(r.get("annotations", [])))
    image = read_image(record["file_name"], format="RGB")
    fmt = cfg.model.input_format
    model_input = image if fmt == "RGB" else image[:, :, ::-1]
    tensor = torch.as_tensor(np.ascontiguousarray(model_input.transpose(2, 0, 1)))
    instances = model([{"image": tensor, "height": image.shape[0], "width": image.shape[1]}])[0][
        "instances"
    ].to("cpu")
    instances = instances[instances.scores >= score_thresh]
    vis = Visualizer(image, MetadataCatalog.get(name))
    for ann in record.get("annotations", []):
        vis.draw_box(ann["bbox"], edge_color="white", line_style="-", alpha=0.4)
    for box, score in zip(instances.pred_boxes.tensor.tolist(), instances.scores.tolist()):
        vis.draw_box(box, edge_color="lime", alpha=0.9)
    cv2.imwrite(out_png, vis.get_output().get_image()[:, :, ::-1])
    return out_png


def run_demo(argv=None) -> dict:
    """Train + evaluate a config (default: the DeepForest frozen EfficientNet-Lite0 recipe),
    print a one-line summary, save ``summary.json`` and ``demo_predictions.png``."""
    parser = argument_parser()
    parser.set_defaults(config_file="DeepForest/faster_rcnn_fpn_effl0_frozen.py")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    results = main(args)
    wall = time.perf_counter() - t0
    cfg = load_config(args.config_file, args.opts)
    summary = summarize_run(cfg, results, wall)
    weights = os.path.join(cfg.train.output_dir, "model_final.pth")
    summary["predictions_png"] = draw_predictions(
        cfg, weights, os.path.join(cfg.train.output_dir, "demo_predictions.png")
    )
    with open(os.path.join(cfg.train.output_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    s = summary
    print(
        f"freezedet demo: box AP {s['AP']:.1f} | AP50 {s['AP50']:.1f} | trainable "
        f"{s['trainable_params'] / 1e6:.2f}M / {s['total_params'] / 1e6:.2f}M params "
        f"({100 * s['trainable_params'] / s['total_params']:.0f}%) | {s['s_per_iter_median']:.2f} "
        f"s/iter | peak mem {s['peak_mem_mb']:.0f} MB | {s['iterations']} iters in "
        f"{s['wall_s'] / 60:.1f} min | {s['predictions_png']}"
    )
    return summary
