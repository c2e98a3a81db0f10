"""Evaluation backends side by side: pycocotools / lvis vs faster-coco-eval, same predictions.

Ground truth: the real DeepForest validation tiles (18 tiles, 420 tree boxes), repeated
``--repeat`` times as distinct images, each tree given one of ``--classes`` synthetic categories
with a Zipf-like long tail (LVIS frequency groups r / c / f by image counts). Predictions are
derived from it like a detector's: 90% of the trees found with jittered boxes (and masks: the
jittered box), 20% of them with a wrong class, plus ~10 false positives per image, random scores.

Both backends run through freezedet's evaluators (``COCOEvaluator`` and ``LVISEvaluator`` with
``backend=...``), bbox and segm; only ``evaluate()`` is timed. Prints the time ratio and the
largest metric difference, and asserts agreement to 1e-4 (metrics on the 0-1 scale)::

    python benchmarks/eval_backends.py --repeat 20
"""

import argparse
import contextlib
import io
import json
import os
import tempfile
import time

import numpy as np
import torch

import freezedet.data  # noqa: F401  (registers deepforest_val)
from detectron2.data import DatasetCatalog
from detectron2.data.datasets import register_coco_instances
from detectron2.structures import BitMasks, Boxes, BoxMode, Instances
from freezedet.data.lvis import register_lvis_json, records_to_lvis
from freezedet.evaluation import COCOEvaluator, LVISEvaluator


def build_records(repeat, num_classes, seed):
    """DeepForest val tiles repeated; tree classes drawn from a Zipf-like distribution, so that
    classes appear in few (rare) to most (frequent) images."""
    rng = np.random.RandomState(seed)
    tiles = DatasetCatalog.get("deepforest_val")
    prob = 1.0 / np.arange(1, num_classes + 1) ** 1.6
    prob /= prob.sum()
    records = []
    for r in range(repeat):
        for t, tile in enumerate(tiles):
            annos = [
                dict(a, category_id=int(rng.choice(num_classes, p=prob)))
                for a in tile["annotations"]
            ]
            records.append(dict(tile, image_id=r * 1000 + t, annotations=annos))
    return records


def frequencies(records, num_classes):
    """LVIS's r / c / f groups, thresholds scaled from LVIS's 10 / 100 of ~100k images."""
    n = len(records)
    counts = np.zeros(num_classes, int)
    for r in records:
        for c in {a["category_id"] for a in r["annotations"]}:
            counts[c] += 1
    return ["r" if k <= 0.05 * n else "c" if k <= 0.3 * n else "f" for k in counts], counts


def make_outputs(records, num_classes, seed):
    rng = np.random.RandomState(seed + 1)
    inputs, outputs = [], []
    for r in records:
        h, w = r["height"], r["width"]
        gt = np.array(
            [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in r["annotations"]]
        ).reshape(-1, 4)
        classes = np.array([a["category_id"] for a in r["annotations"]], int)
        found = rng.rand(len(gt)) < 0.9
        boxes, classes = gt[found], classes[found]
        size = np.maximum(boxes[:, 2:] - boxes[:, :2], 1)
        boxes = boxes + rng.normal(0, 0.05, boxes.shape) * np.tile(size, 2)
        wrong = rng.rand(len(classes)) < 0.2
        classes = np.where(wrong, rng.randint(num_classes, size=len(classes)), classes)
        n_fp = rng.poisson(10)
        xy = rng.rand(n_fp, 2) * [w - 40, h - 40]
        fp = np.concatenate([xy, xy + 10 + rng.rand(n_fp, 2) * 60], axis=1)
        boxes = np.clip(np.concatenate([boxes, fp]), 0, [w, h, w, h])
        classes = np.concatenate([classes, rng.randint(num_classes, size=n_fp)])
        scores = np.concatenate([0.3 + 0.7 * rng.rand(len(gt[found])), 0.6 * rng.rand(n_fp)])
        keep = np.argsort(-scores)[:100]
        inst = Instances((h, w))
        inst.pred_boxes = Boxes(torch.tensor(boxes[keep], dtype=torch.float32))
        inst.scores = torch.tensor(scores[keep], dtype=torch.float32)
        inst.pred_classes = torch.tensor(classes[keep])
        masks = torch.zeros(len(keep), h, w, dtype=torch.bool)
        for m, (x0, y0, x1, y1) in zip(masks, inst.pred_boxes.tensor.round().long().tolist()):
            m[y0:y1, x0:x1] = True
        inst.pred_masks = BitMasks(masks).tensor
        inputs.append({"image_id": r["image_id"]})
        outputs.append({"instances": inst})
    return inputs, outputs


def run(evaluator_cls, name, inputs, outputs, backend):
    ev = evaluator_cls(name, tasks=("bbox", "segm"), distributed=False, backend=backend)
    ev.reset()
    for i, o in zip(inputs, outputs):
        ev.process([i], [o])
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # both backends print summaries
        res = ev.evaluate()
    return res, time.perf_counter() - t0


def compare(label, evaluator_cls, name, inputs, outputs, repeats):
    times, results = {}, {}
    for backend in ("pycocotools", "faster_coco_eval"):
        ts = []
        for _ in range(repeats):
            results[backend], t = run(evaluator_cls, name, inputs, outputs, backend)
            ts.append(t)
        times[backend] = min(ts)
    ref, fast = results["pycocotools"], results["faster_coco_eval"]
    diffs = {
        (task, k): abs(ref[task][k] - fast[task][k]) / 100.0
        for task in ref
        for k in ref[task]
        if not (np.isnan(ref[task][k]) and np.isnan(fast[task][k]))
    }
    worst = max(diffs, key=diffs.get)
    print(
        f"| {label} | {times['pycocotools']:.2f} | {times['faster_coco_eval']:.2f} | "
        f"{times['pycocotools'] / times['faster_coco_eval']:.1f}x | {diffs[worst]:.1e} "
        f"({worst[0]} {worst[1]}) |"
    )
    for task in ref:
        keys = [k for k in ("AP", "AP50", "APs", "APr", "APc", "APf") if k in ref[task]]
        print(
            f"|   {task} | "
            + ", ".join(f"{k} {ref[task][k]:.2f}/{fast[task][k]:.2f}" for k in keys)
            + " |"
        )
    assert diffs[worst] <= 1e-4, f"{label}: backends disagree by {diffs[worst]} on {worst}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="copies of the 18 val tiles")
    parser.add_argument("--classes", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timing-repeats", type=int, default=2, help="best of N evaluate()")
    args = parser.parse_args()

    records = build_records(args.repeat, args.classes, args.seed)
    freqs, counts = frequencies(records, args.classes)
    names = [f"class{i}" for i in range(args.classes)]
    tmp = tempfile.mkdtemp(prefix="eval_backends_")
    os.makedirs(os.path.join(tmp, "tiles"))
    data = records_to_lvis(records, class_names=names, frequencies=freqs, split_folder="tiles")
    lvis_json = os.path.join(tmp, "lvis.json")
    with open(lvis_json, "w") as f:
        json.dump(data, f)
    coco_json = os.path.join(tmp, "coco.json")
    for a in data["annotations"]:
        a["iscrowd"] = 0
    for im in data["images"]:
        im["file_name"] = im["coco_url"]
    with open(coco_json, "w") as f:
        json.dump(data, f)
    register_coco_instances("bench_coco", {}, coco_json, tmp)
    DatasetCatalog.get("bench_coco")  # sets the json id <-> contiguous id map the evaluator uses
    register_lvis_json("bench_lvis", lvis_json, tmp)

    inputs, outputs = make_outputs(records, args.classes, args.seed)
    n_det = sum(len(o["instances"]) for o in outputs)
    n_gt = sum(len(r["annotations"]) for r in records)
    groups = {g: freqs.count(g) for g in "rcf"}
    print(
        f"{len(records)} images, {n_gt} GT objects, {n_det} detections, {args.classes} classes "
        f"(r/c/f: {groups['r']}/{groups['c']}/{groups['f']}); evaluate() time, best of "
        f"{args.timing_repeats}; faster-coco-eval "
        f"{__import__('faster_coco_eval').__version__}, lvis package for LVIS reference\n"
    )
    print(
        "| evaluator (bbox + segm) | pycocotools / lvis s | faster-coco-eval s | speed-up "
        "| max abs diff (0-1 scale) |"
    )
    print("|---|---|---|---|---|")
    compare("COCOEvaluator", COCOEvaluator, "bench_coco", inputs, outputs, args.timing_repeats)
    compare("LVISEvaluator", LVISEvaluator, "bench_lvis", inputs, outputs, args.timing_repeats)
    print("\nbackends agree to 1e-4 on every metric")


if __name__ == "__main__":
    main()
