"""Stock detectron2 Cascade R-CNN R50-FPN fine-tuning vs freezedet frozen Cascade R-CNN + NAS-FPN,
training steps on the same DeepForest batch, side by side.

stock: detectron2's ``Misc/cascade_mask_rcnn_R_50_FPN_1x.yaml`` with MASK_ON=False and one class
(its usual fine-tuning: stem and res2 frozen, res3-res5 train), random init.
freezedet: frozen-trunk Cascade NAS-FPN, the paper's full model (the COCO recipe: NAS-FPN
5 x 256, the reference heads with SyncBN and swish) and the DeepForest CPU recipe (3 x 128,
detectron2's heads, fewer RoIs), on ResNet-50 and EfficientNet-Lite0.
"""

import os

import detectron2
from detectron2.config import get_cfg
from detectron2.modeling import build_model

from common import build_from_config, child_memory, deepforest_batches, header, interleaved
from common import parser, run_child, saved_mb, table, train_step_fn, zero_init_residuals

STOCK = "Misc/cascade_mask_rcnn_R_50_FPN_1x.yaml"
FREEZEDET = {
    "freezedet r50 frozen, COCO reference model": (
        "COCO/cascade_rcnn_nasfpn_72ep.py",
        ["model.roi_heads.num_classes=1"],
        "BGR",
    ),
    "freezedet r50 frozen, CPU recipe": (
        "DeepForest/cascade_rcnn_nasfpn.py",
        ["trunk.name=r50"],
        "BGR",
    ),
    "freezedet effl0 frozen, CPU recipe": (
        "DeepForest/cascade_rcnn_nasfpn.py",
        [],
        "RGB",
    ),
}
NAMES = ["stock r50 fine-tuned, FPN"] + list(FREEZEDET)


def build_stock(device):
    cfg = get_cfg()
    path = os.path.join(os.path.dirname(detectron2.__file__), "model_zoo", "configs", STOCK)
    cfg.merge_from_file(path)
    cfg.MODEL.MASK_ON = False
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 1
    cfg.MODEL.DEVICE = device
    return build_model(cfg)


def build(i, device):
    if i == 0:
        return zero_init_residuals(build_stock(device))
    config, overrides, _ = FREEZEDET[NAMES[i]]
    return zero_init_residuals(build_from_config(config, overrides, device)[0])


def main():
    args = parser(__doc__).parse_args()
    batches = {fmt: deepforest_batches(1, args.batch_size, fmt)[0] for fmt in ("RGB", "BGR")}
    fmt = ["BGR"] + [v[2] for v in FREEZEDET.values()]
    if args.child:
        i = int(args.child)
        return run_child(args.device, lambda: train_step_fn(build(i, args.device), batches[fmt[i]]))
    models = [build(i, args.device) for i in range(len(NAMES))]
    fns = {n: train_step_fn(m, batches[f]) for n, m, f in zip(NAMES, models, fmt)}
    med = interleaved(fns, args.warmup, args.repeats, args.device)
    saved = [saved_mb(m, batches[f]) for m, f in zip(models, fmt)]
    extra = ["--device", args.device, "--batch-size", str(args.batch_size)]
    mem = [] if args.no_rss else [child_memory(__file__, str(i), extra) for i in range(len(NAMES))]
    rows = []
    for i, n in enumerate(NAMES):
        row = [n, med[n], med[n] / med[NAMES[0]], saved[i], saved[i] / saved[0]]
        if mem:
            row += [mem[i]["peak_mb"], mem[i]["delta_mb"], mem[i]["delta_mb"] / mem[0]["delta_mb"]]
        rows.append(row)
    cols = ["model", "s/step", "time / stock", "saved MB", "saved / stock"]
    if mem:
        cols += ["peak MB (process)", "step peak MB", "step peak / stock"]
    shape = tuple(batches["RGB"][0]["image"].shape)
    print(header("Stock detectron2 Cascade R50-FPN fine-tuning vs freezedet frozen", args))
    print(f"input: DeepForest train tiles {shape}, each model padding to its size divisibility\n")
    print(table(rows, cols))


if __name__ == "__main__":
    main()
