"""Cached vs uncached training epochs on DeepForest train tiles (frozen EfficientNet-Lite0
Faster R-CNN + FPN, the recipe's random flips).

Both models start from the same weights and see the same batches (each batch is mapped once,
its mapping time charged to both); steps alternate between them. The cache is first filled with
every (tile, flip) view the pipeline can produce (4 per tile; the fill time is reported), so the
cached epoch is the steady state of any later epoch. An epoch's time is data mapping plus
training steps.
"""

import copy
import random
import time

from detectron2.config import instantiate
from detectron2.data import DatasetCatalog

from common import build_from_config, header, parser, sync, table, train_step_fn
from freezedet.modeling.backbone import FeatureCache


def views(item):
    img = item["image"]
    return [img, img.flip(-1), img.flip(-2), img.flip(-1).flip(-2)]


def main():
    p = parser(__doc__)
    p.add_argument("--config", default="DeepForest/faster_rcnn_fpn.py")
    p.add_argument("--images", type=int, default=12, help="train tiles per epoch (35 = all)")
    p.add_argument("--budget-mb", type=float, default=2048)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument(
        "--trunk", default=None, help="a key of freezedet.config.TRUNKS (default: the recipe's)"
    )
    args = p.parse_args()
    selection = [f"trunk.name={args.trunk}"] if args.trunk else []
    plain, cfg = build_from_config(args.config, selection, device=args.device)
    cached = copy.deepcopy(plain)
    cached.backbone.bottom_up.feature_cache = FeatureCache(budget_mb=args.budget_mb)
    mapper = instantiate(cfg.dataloader.train.mapper)
    dicts = DatasetCatalog.get("deepforest_train")[: args.images]

    # fill: every view of every tile through the cached trunk once
    trunk = cached.backbone.bottom_up.train()
    t0 = time.perf_counter()
    all_views = [v for d in dicts for v in views(mapper(dict(d)))]
    for i in range(0, len(all_views), args.batch_size):
        batch = [{"image": v} for v in all_views[i : i + args.batch_size]]
        trunk(cached.preprocess_image(batch).tensor.to(args.device))
    fill = time.perf_counter() - t0

    rng = random.Random(0)
    epochs = {"uncached": [], "cached": []}
    steps = {"uncached": train_step_fn(plain, None), "cached": train_step_fn(cached, None)}
    for _ in range(args.epochs):
        order = list(range(len(dicts)))
        rng.shuffle(order)
        total = {k: 0.0 for k in epochs}
        for i in range(0, len(order) - args.batch_size + 1, args.batch_size):
            t0 = time.perf_counter()
            batch = [mapper(dict(dicts[j])) for j in order[i : i + args.batch_size]]
            mapping = time.perf_counter() - t0
            for name in ("uncached", "cached"):
                sync(args.device)
                t0 = time.perf_counter()
                steps[name](batch)
                sync(args.device)
                total[name] += mapping + time.perf_counter() - t0
        for k in epochs:
            epochs[k].append(total[k])
    cache = cached.backbone.bottom_up.feature_cache
    rows = []
    for k in ("uncached", "cached"):
        best = min(epochs[k])
        rows.append([k, best, min(epochs["uncached"]) / best])
    timing = f"{args.epochs} epochs per variant, steps alternating between the variants"
    print(header("Feature cache: cached vs uncached epochs", args, timing))
    print(
        f"{len(dicts)} DeepForest train tiles per epoch, {len(dicts) // args.batch_size} steps; "
        f"cache: {len(cache)} views, {cache.used_mb:.0f} MB, filled in {fill:.1f} s "
        f"({len(all_views)} views); hits {cache.hits}, misses {cache.misses}; "
        f"epoch times (s): {epochs}\n"
    )
    print(table(rows, ["variant", "s/epoch (best of epochs)", "speed-up"]))


if __name__ == "__main__":
    main()
