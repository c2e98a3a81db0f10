"""Tiled prediction over DeepForest's whole validation regions vs the usual per-tile evaluation.

The validation split cuts the right-most strip of each large source image into 400 px tiles
(``freezedet/data/deepforest.py``) and evaluates each tile on its own; a crown cut by a tile
edge is a (clipped) ground-truth box in every tile it reaches. Here the same model also
predicts each image's whole validation region (the union of its val tiles) with
``Predictor(tile_size=...)``, and is scored against the region's VOC boxes, clipped to the
region by the tiler's rule (kept if >= 50 % of the box's area and >= 4 px per side remain).
One run prints COCO box AP side by side and the throughput (megapixels per second of model
input, reading and merging included) of every setting.

    python benchmarks/tiled_inference.py --weights /path/to/model_final.pth
"""

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict

import numpy as np
import torch

from detectron2.data import DatasetCatalog

import freezedet  # noqa: F401  (registers the DeepForest datasets)
from common import table
from freezedet.data.deepforest import deepforest_data_dir, parse_voc_xml
from freezedet.evaluation.results_file import evaluate_results_file
from freezedet.inference import Predictor, instances_to_results


def _val_regions():
    """{source image: (x0, y0, x1, y1)}: the union of each source image's val tiles."""
    regions = defaultdict(lambda: [np.inf, np.inf, -np.inf, -np.inf])
    for r in DatasetCatalog.get("deepforest_val"):
        box = regions[r["source_image"]]
        x0, y0, x1, y1 = r["tile_box"]
        regions[r["source_image"]] = [
            min(box[0], x0),
            min(box[1], y0),
            max(box[2], x1),
            max(box[3], y1),
        ]
    return {k: tuple(int(v) for v in box) for k, box in regions.items()}


def _region_boxes(source, region, min_visible=0.5, min_size=4.0):
    """The source image's VOC boxes clipped to ``region`` (region coordinates), the tiler's
    rule (freezedet.data.deepforest._clip) on a rectangle."""
    _, boxes = parse_voc_xml(os.path.join(deepforest_data_dir(), source + ".xml"))
    x0, y0, x1, y1 = region
    clipped = boxes.copy()
    clipped[:, [0, 2]] = np.clip(clipped[:, [0, 2]], x0, x1) - x0
    clipped[:, [1, 3]] = np.clip(clipped[:, [1, 3]], y0, y1) - y0
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    w, h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    return clipped[(w >= min_size) & (h >= min_size) & (w * h >= min_visible * area)]


def _gt_json(images, path):
    """COCO json of [(image id, (height, width), XYXY boxes)], one category (id 0, as the
    DeepForest datasets have no id map)."""
    data = {"images": [], "annotations": [], "categories": [{"id": 0, "name": "tree"}]}
    for image_id, (height, width), boxes in images:
        data["images"].append(
            {"id": image_id, "file_name": f"{image_id}.png", "height": height, "width": width}
        )
        for x0, y0, x1, y1 in boxes:
            ann = {"id": len(data["annotations"]) + 1, "image_id": image_id, "category_id": 0}
            ann.update(bbox=[x0, y0, x1 - x0, y1 - y0], area=(x1 - x0) * (y1 - y0), iscrowd=0)
            data["annotations"].append(ann)
    with open(path, "w") as f:
        json.dump(data, f)
    return path


def _score(predictor, images, gt_path, max_dets, workdir, name):
    """Predict [(image id, array)], return (metrics, megapixels per second)."""
    results, pixels = [], 0
    start = time.perf_counter()
    for image_id, image in images:
        instances = predictor(image)
        results += instances_to_results(instances, image_id=image_id, metadata=predictor.metadata)
        pixels += image.shape[0] * image.shape[1]
    seconds = time.perf_counter() - start
    path = os.path.join(workdir, f"{name}.json")
    with open(path, "w") as f:
        json.dump(results, f)
    metrics = evaluate_results_file(gt_path, path, tasks=["bbox"], max_dets=max_dets)["bbox"]
    return metrics, pixels / 1e6 / seconds, len(results)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config-file", default="configs/DeepForest/faster_rcnn_fpn.py")
    p.add_argument("--weights", required=True)
    p.add_argument("--tile", type=int, default=400)
    p.add_argument("--overlaps", type=float, nargs="+", default=[0.0, 0.25, 0.5])
    p.add_argument("--merges", nargs="+", default=["nms", "wbf"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    base = Predictor.from_config(args.config_file, args.weights, device=args.device)
    options = dict(model=base.model, input_format=base.input_format, metadata=base.metadata)
    options["augmentations"] = base.augmentations.augs
    workdir = tempfile.mkdtemp(prefix="tiled_inference_")

    records = DatasetCatalog.get("deepforest_val")
    tiles = [(r["image_id"], base.read(r["file_name"])) for r in records]
    tile_gt = [
        (r["image_id"], (r["height"], r["width"]), [a["bbox"] for a in r["annotations"]])
        for r in records
    ]
    tile_gt_path = _gt_json(tile_gt, os.path.join(workdir, "tiles_gt.json"))
    regions = _val_regions()
    sources, region_gt = [], []
    for k, (source, region) in enumerate(sorted(regions.items())):
        image = base.read(os.path.join(deepforest_data_dir(), source + ".png"))
        x0, y0, x1, y1 = region
        sources.append((k + 1, np.ascontiguousarray(image[y0:y1, x0:x1])))
        region_gt.append((k + 1, (y1 - y0, x1 - x0), _region_boxes(source, region)))
    region_gt_path = _gt_json(region_gt, os.path.join(workdir, "regions_gt.json"))
    n_tile_boxes = sum(len(b) for _, _, b in tile_gt)
    n_region_boxes = sum(len(b) for _, _, b in region_gt)

    rows = []
    metrics, mps, n = _score(Predictor(**options), tiles, tile_gt_path, 300, workdir, "per_tile")
    rows.append(
        [
            "per-tile evaluation (18 val tiles)",
            "-",
            "-",
            metrics["AP"],
            metrics["AP50"],
            metrics["AP75"],
            n,
            mps,
        ]
    )
    settings = [(o, m, True) for o in args.overlaps for m in args.merges]
    settings.append((0.25, "nms", False))
    for overlap, merge, cores in settings:
        predictor = Predictor(
            tile_size=args.tile, overlap=overlap, merge=merge, tile_cores=cores, **options
        )
        name = f"tiled_{overlap}_{merge}_{cores}"
        metrics, mps, n = _score(predictor, sources, region_gt_path, 5000, workdir, name)
        label = f"tiled {args.tile} px, whole val regions" + ("" if cores else ", no tile cores")
        rows.append(
            [label, overlap, merge, metrics["AP"], metrics["AP50"], metrics["AP75"], n, mps]
        )
    print(
        f"## Tiled vs per-tile prediction, DeepForest validation\n\n"
        f"command: `python benchmarks/tiled_inference.py {' '.join(sys.argv[1:])}`  \n"
        f"config {args.config_file}, weights {args.weights}, device {args.device}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads  \n"
        f"ground truth: per tile {n_tile_boxes} boxes in {len(tile_gt)} tiles; whole regions "
        f"{n_region_boxes} boxes in {len(region_gt)} regions "
        f"({', '.join(f'{w}x{h}' for _, (h, w), _ in region_gt)} px)\n"
    )
    headers = ["prediction", "overlap", "merge", "AP", "AP50", "AP75", "detections", "MP/s"]
    print(table(rows, headers))


if __name__ == "__main__":
    main()
