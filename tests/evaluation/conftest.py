"""Shared fixtures of the evaluation tests."""

import numpy as np
import pytest
import torch

import freezedet.data  # noqa: F401  (registers labelme_voc_train)
from detectron2.data import DatasetCatalog
from detectron2.structures import BitMasks, Boxes, BoxMode, Instances, PolygonMasks


@pytest.fixture
def labelme_predictions():
    """Per photo: each object found with a jittered box, its mask shifted by a few pixels, some
    with the wrong class, plus two false positives."""
    rng = np.random.RandomState(0)
    inputs, outputs = [], []
    for d in DatasetCatalog.get("labelme_voc_train"):
        h, w = d["height"], d["width"]
        polys = PolygonMasks([a["segmentation"] for a in d["annotations"]])
        masks = BitMasks.from_polygon_masks(polys, h, w).tensor
        masks = torch.roll(
            masks, shifts=(int(rng.randint(-4, 5)), int(rng.randint(-4, 5))), dims=(1, 2)
        )
        fp = torch.zeros(2, h, w, dtype=torch.bool)
        fp[0, :50, :80] = fp[1, 100:180, 200:260] = True
        masks = torch.cat([masks, fp])
        boxes = [
            BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in d["annotations"]
        ]
        boxes = np.array(boxes + [[0, 0, 80, 50], [200, 100, 260, 180]], np.float32)
        boxes += rng.normal(0, 4, boxes.shape).astype(np.float32)
        classes = [a["category_id"] for a in d["annotations"]] + [14, 3]
        classes = [c if rng.rand() > 0.2 else int(rng.randint(20)) for c in classes]
        inst = Instances((h, w))
        inst.pred_boxes = Boxes(torch.from_numpy(boxes))
        inst.scores = torch.from_numpy(rng.rand(len(boxes)).astype(np.float32))
        inst.pred_classes = torch.tensor(classes)
        inst.pred_masks = masks
        inputs.append({"image_id": d["image_id"]})
        outputs.append({"instances": inst})
    return inputs, outputs
