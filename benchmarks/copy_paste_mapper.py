"""Simple Copy-Paste mapper throughput (images/s, one process) against LSJ without pasting.

Real data: labelme's VOC photos (polygon masks) and DeepForest training tiles (boxes only, the
box-crop approximation). Variants are interleaved record by record (LSJ, LSJ + paste, LSJ +
paste + blending, ...), so a busy machine slows all alike; prints medians and ratios::

    python benchmarks/copy_paste_mapper.py --image-size 1024 --repeats 30
"""

import argparse
import statistics
import time

import freezedet.data  # noqa: F401  (registers labelme_voc_train, deepforest_train)
from detectron2.data import DatasetCatalog
from freezedet.data.copy_paste import CopyPasteDatasetMapper, build_lsj_augmentations


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--image-size", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=30, help="records mapped per variant")
    args = p.parse_args()
    augs = build_lsj_augmentations(image_size=args.image_size)
    for data, masks in (("labelme_voc_train", True), ("deepforest_train", False)):
        dicts = DatasetCatalog.get(data)
        kw = dict(augmentations=augs, use_instance_mask=masks, source=data, seed=0)
        variants = {
            "LSJ only (paste_prob=0)": CopyPasteDatasetMapper(paste_prob=0.0, **kw),
            "LSJ + Copy-Paste": CopyPasteDatasetMapper(paste_prob=1.0, **kw),
            "LSJ + Copy-Paste + blend": CopyPasteDatasetMapper(paste_prob=1.0, blend=True, **kw),
        }
        times = {k: [] for k in variants}
        for i in range(args.repeats + 2):
            record = dicts[i % len(dicts)]
            for name, mapper in variants.items():
                t0 = time.perf_counter()
                mapper(record)
                if i >= 2:  # warm-up: first reads of each file
                    times[name].append(time.perf_counter() - t0)
        base = statistics.median(times["LSJ only (paste_prob=0)"])
        print(
            f"\n{data} ({'masks' if masks else 'boxes'}), LSJ {args.image_size}, "
            f"{args.repeats} records per variant, median s/image"
        )
        print("| variant | images/s | s/image | vs LSJ only |")
        print("|---|---|---|---|")
        for name, ts in times.items():
            m = statistics.median(ts)
            print(f"| {name} | {1 / m:.1f} | {m:.3f} | {m / base:.2f}x |")


if __name__ == "__main__":
    main()
