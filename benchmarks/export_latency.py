"""CPU latency per image of eager PyTorch vs TorchScript vs ONNX Runtime, and their parity.

For each detector (Faster R-CNN FPN, Cascade R-CNN NAS-FPN on the frozen Lite0), the model is
exported to TorchScript and ONNX (``freezedet.inference.export``) and all three run through
the same ``Predictor`` (same reading, test transforms and postprocessing) on real DeepForest
val tiles, one image per call, interleaved (eager, TorchScript, ONNX, eager, ...), medians and
ratios to eager. Eager is freezedet's default frozen-trunk runtime (BN folded, channels_last);
the exported copies have BN folded too. Parity: the largest box / score difference over the
timed images (detections paired regardless of order).

    python benchmarks/export_latency.py --weights fpn=/path/model_final.pth cascade=/path/...
"""

import sys
import tempfile

import numpy as np
import torch

from detectron2.data import DatasetCatalog

import freezedet  # noqa: F401  (registers the DeepForest datasets)
from common import interleaved, parser, table
from freezedet.inference import Predictor
from freezedet.inference.export import (
    ExportedModel,
    detection_differences,
    export_model,
    onnx_available,
)

CONFIGS = {
    "fpn": "configs/DeepForest/faster_rcnn_fpn.py",
    "cascade": "configs/DeepForest/cascade_rcnn_nasfpn.py",
}


def _variants(name, weights, workdir, device):
    eager = Predictor.from_config(CONFIGS[name], weights, device=device)
    image = eager.read(DatasetCatalog.get("deepforest_val")[0]["file_name"])
    variants = {"eager": eager}
    formats = {"torchscript": ".ts"}
    if onnx_available():
        formats["onnx"] = ".onnx"
    for fmt, ext in formats.items():
        path = export_model(eager.model, eager.preprocess(image)["image"], f"{workdir}/{name}{ext}")
        variants[fmt] = Predictor(
            model=ExportedModel(path=path, device=device),
            input_format=eager.input_format,
            augmentations=eager.augmentations.augs,
            metadata=eager.metadata,
        )
    return variants


def main():
    p = parser(__doc__)
    p.add_argument(
        "--weights",
        nargs="+",
        default=[],
        help="name=checkpoint per detector (fpn, cascade); none: the ImageNet init checkpoint",
    )
    p.add_argument("--images", type=int, default=6, help="DeepForest val tiles cycled through")
    args = p.parse_args()
    weights = dict(w.split("=", 1) for w in args.weights)
    init = "freezedet://weights/tf_efficientnet_lite0.pth"
    records = DatasetCatalog.get("deepforest_val")[: args.images]
    workdir = tempfile.mkdtemp(prefix="export_latency_")
    rows = []
    for name in CONFIGS:
        variants = _variants(name, weights.get(name, init), workdir, args.device)
        images = [variants["eager"].read(r["file_name"]) for r in records]
        position = {k: 0 for k in variants}
        outputs = {k: [] for k in variants}

        def call(kind):
            def run():
                image = images[position[kind] % len(images)]
                position[kind] += 1
                outputs[kind].append(variants[kind](image))

            return run

        seconds = interleaved(
            {k: call(k) for k in variants}, args.warmup, args.repeats, device=args.device
        )
        n_dets = np.median([len(o) for o in outputs["eager"]])
        for kind in variants:
            diffs = [detection_differences(a, b) for a, b in zip(outputs["eager"], outputs[kind])]
            box = max(d["box"] for d in diffs)
            score = max(d["score"] for d in diffs)
            rows.append(
                [
                    name,
                    kind,
                    1000 * seconds[kind],
                    seconds["eager"] / seconds[kind],
                    f"{box:.1e}",
                    f"{score:.1e}",
                    n_dets,
                    weights.get(name, "ImageNet trunk + random heads"),
                ]
            )
    print(
        f"## Exported detectors: CPU latency per image\n\ncommand: `python {' '.join(sys.argv)}`  \n"
        f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"400 px DeepForest val tiles, one image per call, {args.warmup} warm-up + "
        f"{args.repeats} timed calls per variant (medians, interleaved)\n"
    )
    headers = [
        "detector",
        "runtime",
        "ms / image",
        "speed-up vs eager",
        "max box diff (px)",
        "max score diff",
        "detections",
        "weights",
    ]
    print(table(rows, headers))


if __name__ == "__main__":
    main()
