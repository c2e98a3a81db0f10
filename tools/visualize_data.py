#!/usr/bin/env python
"""Write PNGs of augmented training samples (boxes, masks, class names drawn).

Either from a LazyConfig (its ``dataloader.train.dataset`` and ``dataloader.train.mapper`` are
instantiated; ``KEY=VALUE`` overrides may follow)::

    python tools/visualize_data.py --config-file configs/X.py --output vis/ --num 8

or from a registered dataset with LSJ and, optionally, Simple Copy-Paste::

    python tools/visualize_data.py --dataset labelme_voc_train --copy-paste --image-size 512 \\
        --output vis/ --num 8 --seed 0
"""

import argparse
import logging
import sys

# only the standard library at the top: --help and argument errors answer before the slow imports
# (torch, detectron2, freezedet) that main() makes
DEBUG_HELP = "show the traceback of an input error (FREEZEDET_DEBUG=1 does the same)"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config-file", help="LazyConfig with dataloader.train.{dataset,mapper}")
    src.add_argument("--dataset", help="registered dataset name (LSJ mapper built here)")
    p.add_argument("--output", required=True, help="folder for the PNGs")
    p.add_argument("--num", type=int, default=8, help="number of samples to write")
    p.add_argument("--copy-paste", action="store_true", help="--dataset mode: paste objects")
    p.add_argument("--box-only", action="store_true", help="--dataset mode: ignore masks")
    p.add_argument("--image-size", type=int, default=1024, help="--dataset mode: LSJ size")
    p.add_argument("--min-scale", type=float, default=0.1, help="--dataset mode: LSJ min scale")
    p.add_argument("--max-scale", type=float, default=2.0, help="--dataset mode: LSJ max scale")
    p.add_argument("--blend", action="store_true", help="--dataset mode: Gaussian blending")
    p.add_argument("--seed", type=int, default=0, help="--dataset mode: copy-paste seed")
    p.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    p.add_argument("opts", nargs=argparse.REMAINDER, help="--config-file mode: KEY=VALUE")
    args = p.parse_args(argv)
    if args.num < 1:
        p.error(f"--num must be >= 1, got {args.num}")
    if args.opts and not args.config_file:
        p.error(f"overrides {args.opts} need --config-file")
    return args


def _from_config(args):
    from detectron2.config import instantiate
    from detectron2.data import MetadataCatalog

    from freezedet.data.catalog import dataset_names
    from freezedet.engine import load_config
    from freezedet.utils.errors import UserKeyError

    cfg = load_config(args.config_file, args.opts)  # unknown keys are errors, as in train_net
    train = cfg.dataloader.train
    for key in ("dataset", "mapper"):
        if key not in train:
            raise UserKeyError(
                f"{args.config_file}: dataloader.train has no '{key}'; use a config whose "
                "dataloader.train has a dataset and a mapper, or --dataset"
            )
    dicts = instantiate(train.dataset)  # checked records; registers a json dataset's names
    mapper = instantiate(train.mapper)
    names = dataset_names(train.dataset)
    metadata = MetadataCatalog.get(names[0]) if names else None
    return dicts, mapper, metadata


def _from_dataset(args):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from freezedet.data.copy_paste import CopyPasteDatasetMapper, build_lsj_augmentations

    dicts = DatasetCatalog.get(args.dataset)
    mapper = CopyPasteDatasetMapper(
        augmentations=build_lsj_augmentations(args.image_size, args.min_scale, args.max_scale),
        image_format="BGR",
        use_instance_mask=not args.box_only,
        source=args.dataset,
        paste_prob=1.0 if args.copy_paste else 0.0,
        blend=args.blend,
        seed=args.seed,
    )
    return dicts, mapper, MetadataCatalog.get(args.dataset)


def main(argv=None):
    args = parse_args(argv)
    from detectron2.utils.logger import setup_logger

    import freezedet  # noqa: F401  (registers freezedet's datasets)
    from freezedet.data.copy_paste import save_augmented_samples
    from freezedet.data.mapper import FileNamingMapper

    setup_logger(name="freezedet")
    dicts, mapper, metadata = _from_config(args) if args.config_file else _from_dataset(args)
    paths = save_augmented_samples(
        FileNamingMapper(mapper=mapper),
        dicts,
        args.output,
        num_samples=args.num,
        metadata=metadata,
        image_format=getattr(mapper, "image_format", "BGR"),
    )
    logging.getLogger("freezedet").info(f"wrote {len(paths)} samples to {args.output}")
    return paths


if __name__ == "__main__":
    parse_args()  # --help, bad arguments: before the slow imports
    from freezedet.utils.errors import run_tool  # noqa: E402

    sys.exit(run_tool(main))
