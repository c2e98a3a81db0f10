#!/usr/bin/env python
"""Compute selective-search proposals for a dataset into a resumable json cache.

  python tools/selective_search.py --dataset deepforest_all --output proposals.json --workers 2
  python tools/selective_search.py --image-dir photos/ --output photos_proposals.json
  python tools/selective_search.py --config-file cfg.py --config-key dataloader.proposals

Images already in --output are skipped, so rerunning an interrupted command finishes it. With
--config-file, the node at --config-key (a dict with any of the option names below, e.g.
``dict(dataset="deepforest_all", output="...", topk=100)``) supplies defaults; options given on
the command line win. Load the result with freezedet.data.proposals.load_proposals_into_dicts.
"""

import argparse
import os
import sys

# only the standard library at the top: --help and argument errors answer before the slow imports
# (torch, detectron2, freezedet) that main() makes

DEBUG_HELP = "show the traceback of an input error (FREEZEDET_DEBUG=1 does the same)"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def _parser():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", help="LazyConfig file holding the options (optional)")
    parser.add_argument("--config-key", default="dataloader.proposals", help="dotted key path")
    parser.add_argument("--dataset", help="a registered detectron2 dataset name")
    parser.add_argument("--image-dir", help="a folder of images (ids: file names)")
    parser.add_argument("--output", help="cache json to write (resumed if it exists)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--chunksize", type=int, default=None, help="images per worker task")
    parser.add_argument(
        "--mode",
        default="fast",
        help="fast (default), quality or single (freezedet.data.proposals.MODES)",
    )
    parser.add_argument(
        "--max-side", type=int, default=800, help="downscale longer sides above this; 0: never"
    )
    parser.add_argument("--min-size", type=float, default=8.0, help="pixels, both sides")
    parser.add_argument("--max-aspect-ratio", type=float, default=3.0)
    parser.add_argument("--nms-thresh", type=float, default=0.7, help="1 disables NMS")
    parser.add_argument("--topk", type=int, default=100, help="proposals kept per image")
    parser.add_argument("--seed", type=int, default=0, help="seeds OpenCV's ranking")
    parser.add_argument("--save-interval", type=float, default=30.0, help="seconds")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    return parser


def _config_defaults(parser, config_file, key):
    from detectron2.config import LazyConfig

    node = LazyConfig.load(config_file)
    for part in key.split("."):
        if part not in node:
            parser.error(f"{config_file} has no key {part!r} (looking up {key!r})")
        node = node[part]
    dests = set(vars(parser.parse_args([]))) - {"config_file", "config_key", "debug"}
    unknown = sorted(set(node) - dests)
    if unknown:
        parser.error(f"{config_file}:{key} has unknown keys {unknown}; valid: {sorted(dests)}")
    return dict(node)


def _images(args, parser):
    if args.dataset:
        from detectron2.data import DatasetCatalog

        records = DatasetCatalog.get(args.dataset)
        no_id = [r["file_name"] for r in records if "image_id" not in r]
        if no_id:
            parser.error(f"{len(no_id)} records of {args.dataset} have no image_id: {no_id[:3]}")
        return args.dataset, [(r["image_id"], r["file_name"]) for r in records]
    root = os.path.abspath(args.image_dir)
    if not os.path.isdir(root):
        parser.error(f"--image-dir {root} is not a folder")
    names = sorted(n for n in os.listdir(root) if n.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        parser.error(f"--image-dir {root} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return f"dir:{root}", [(n, os.path.join(root, n)) for n in names]


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    import freezedet  # noqa: F401  (registers the project's datasets)
    from freezedet.data.proposals import MODES, generate_proposal_cache
    from freezedet.utils.file_io import data_root

    if args.config_file:
        parser.set_defaults(**_config_defaults(parser, args.config_file, args.config_key))
        args = parser.parse_args(argv)
    if bool(args.dataset) == bool(args.image_dir):
        parser.error("give exactly one of --dataset and --image-dir")
    if not args.output:
        parser.error("--output is required")
    if args.mode not in MODES:
        parser.error(f"--mode {args.mode!r}: one of {', '.join(MODES)}")
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    if args.output.startswith("freezedet://"):  # the cache is written locally, under data_root
        args.output = os.path.join(data_root(), args.output[len("freezedet://") :])
    dataset, images = _images(args, parser)
    params = dict(
        mode=args.mode,
        max_side=args.max_side or None,
        min_size=args.min_size,
        max_aspect_ratio=args.max_aspect_ratio,
        nms_thresh=args.nms_thresh,
        topk=args.topk,
        seed=args.seed,
    )
    stats = generate_proposal_cache(
        images,
        args.output,
        params=params,
        dataset=dataset,
        workers=args.workers,
        chunksize=args.chunksize,
        save_interval_s=args.save_interval,
        progress=not args.no_progress,
    )
    n, sec = stats["num_computed"], stats["seconds"]
    rate = f"{n / sec:.2f} images/s" if n and sec > 0 else "nothing to compute"
    print(
        f"{dataset}: {n} images computed in {sec:.1f}s ({rate}, {args.workers} workers), "
        f"{stats['num_skipped']} already in the cache -> {args.output}"
    )


if __name__ == "__main__":
    _parser().parse_args()  # --help, bad arguments: before the slow imports
    from freezedet.utils.errors import run_tool  # noqa: E402

    sys.exit(run_tool(main))
