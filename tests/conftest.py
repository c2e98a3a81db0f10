"""Shared fixtures: a tiny synthetic box dataset for fast engine tests (real-data tests live
beside the components that load real data)."""
import os

import numpy as np
import pytest
from PIL import Image

import freezedet  # noqa: F401
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode


def make_synthetic_dataset(root, n=4, size=128, seed=0):
    """Images with 1-3 bright rectangles on textured noise, one class."""
    rng = np.random.RandomState(seed)
    os.makedirs(root, exist_ok=True)
    records = []
    for i in range(n):
        img = (rng.rand(size, size, 3) * 60).astype(np.uint8)
        anns = []
        for _ in range(rng.randint(1, 4)):
            w, h = rng.randint(16, 48, size=2)
            x0, y0 = rng.randint(0, size - w), rng.randint(0, size - h)
            img[y0 : y0 + h, x0 : x0 + w] = rng.randint(150, 255, size=3)
            anns.append(
                {"bbox": [float(x0), float(y0), float(x0 + w), float(y0 + h)],
                 "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0, "iscrowd": 0}
            )
        path = os.path.join(root, f"{i}.png")
        Image.fromarray(img).save(path)
        records.append({"file_name": path, "image_id": i, "height": size, "width": size,
                        "annotations": anns})
    return records


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory):
    """Registers 'synthetic_train' / 'synthetic_val' (same 4 images); returns the names."""
    root = str(tmp_path_factory.mktemp("synthetic"))
    records = make_synthetic_dataset(root)
    for name in ("synthetic_train", "synthetic_val"):
        if name not in DatasetCatalog.list():
            DatasetCatalog.register(name, lambda r=records: [dict(x) for x in r])
            MetadataCatalog.get(name).set(thing_classes=["box"], evaluator_type="coco")
    return "synthetic_train", "synthetic_val"
