#!/usr/bin/env python
"""Put the real data freezedet uses in place (run by ``make install``; idempotent):

- labelme's VOC example (3 photos, polygon masks) from the hash-pinned labelme==6.3.1 sdist,
- EfficientNet-Lite0/1/2 ImageNet weights converted into backbone checkpoints,
- a check that deepforest's images are installed.
"""

import freezedet  # noqa: F401
from freezedet.checkpoint import EFFICIENTNET_LITE, convert_efficientnet_lite
from freezedet.data.deepforest import deepforest_data_dir
from freezedet.data.labelme import fetch_labelme_coco
from freezedet.data.paths import data_root

if __name__ == "__main__":
    print(f"freezedet data root: {data_root()}")
    print(f"deepforest images:   {deepforest_data_dir()}")
    print(f"labelme VOC example: {fetch_labelme_coco()}")
    for variant in sorted(EFFICIENTNET_LITE):
        print(f"{variant} weights:       {convert_efficientnet_lite(variant)}")
