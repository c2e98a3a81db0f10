"""Polygon masks survive every shipped training augmentation: labelme's real photos and polygons
through each recipe family's train mapper (LSJ resize + fixed-size crop + flip, which crops
polygons with shapely; Copy-Paste; the labelme resize + flip) and through the DeepForest
recipes' flips, exact 90-degree rotations and scale jitter + crop with masks turned on. After
the transforms every mask lies inside its box, boxes recomputed from masks are tight, and an
object whose box survived kept a non-empty mask."""

import numpy as np
import pytest
import torch

import freezedet.data  # noqa: F401  (registers labelme_voc_train)
from detectron2.config import instantiate
from detectron2.data import DatasetCatalog, DatasetMapper
from detectron2.structures import BitMasks, PolygonMasks, polygons_to_bitmask
from freezedet.engine import load_config

TOL = 2  # px: a rasterised polygon covers the pixels its continuous outline touches
SEEDS = range(4)
RECORDS = "labelme_voc_train"
LSJ_SIZE = 512  # the recipes' 1024 px crop, halved (labelme's photos are 500 px wide)
# recipe whose train mapper (or augmentation list) is checked -> what it exercises
MAPPERS = {
    # coco_lsj.py: ResizeScale 0.1-2.0 + FixedSizeCrop + flip, polygon masks, recompute_boxes
    "COCO/mask_rcnn_fpn_72ep.py": "mapper",
    # coco_lsj_copypaste.py: LSJ + Simple Copy-Paste (polygons rasterised first); lvis_lsj.py
    # builds the same mapper with another source
    "COCO/mask_rcnn_fpn_r50_frozen_copypaste_72ep.py": "mapper",
    # labelme_voc.py: ResizeShortestEdge + flip, boxes transformed (not recomputed)
    "LabelmeVOC/mask_rcnn_fpn.py": "mapper",
    # deepforest.py: horizontal + vertical flips (box-only recipe: masks turned on here)
    "DeepForest/faster_rcnn_nasfpn.py": "augmentations",
    # flip + RandomRot90 (the 8 symmetries of the square)
    "DeepForest/faster_rcnn_fpn_p2.py": "augmentations",
    # flip + RandomRot90 + scale jitter with a 400 px crop + colour jitter
    "DeepForest/cascade_rcnn_fpn_p2_effl0_frozen.py": "augmentations",
}


def _mapper(name, what):
    opts = []
    if "copypaste" in name:  # paste from the same real photos, with the recipes' per-record seed
        opts = [
            f"dataloader.train.mapper.source={RECORDS}",
            "dataloader.train.mapper.seed=0",
            f"dataloader.train.mapper.augmentations.image_size={LSJ_SIZE}",
        ]
    elif "_72ep" in name:  # LSJ at a smaller crop: the same transforms, cheaper masks
        opts = [
            f"dataloader.train.mapper.augmentations.0.target_height={LSJ_SIZE}",
            f"dataloader.train.mapper.augmentations.0.target_width={LSJ_SIZE}",
            f"dataloader.train.mapper.augmentations.1.crop_size=[{LSJ_SIZE},{LSJ_SIZE}]",
        ]
    train = load_config(name, opts).dataloader.train
    if what == "mapper":
        return instantiate(train.mapper)
    return DatasetMapper(
        is_train=True,
        augmentations=instantiate(train.mapper.augmentations),
        image_format="RGB",
        use_instance_mask=True,
    )


def _bitmasks(masks, size):
    if isinstance(masks, BitMasks):
        return masks.tensor.numpy()
    assert isinstance(masks, PolygonMasks), type(masks)
    return np.stack(
        [polygons_to_bitmask(p, *size) for p in masks.polygons] or [np.zeros(size, bool)]
    )[: len(masks)]


def _check_sample(out, recomputed):
    """Asserts on one mapped sample; returns (instances, boxes cut by the image border)."""
    inst = out["instances"]
    size = tuple(out["image"].shape[-2:])
    assert inst.image_size == size
    masks = _bitmasks(inst.gt_masks, size)
    boxes = inst.gt_boxes.tensor.numpy()
    assert len(masks) == len(boxes) == len(inst)
    h, w = size
    cut = 0
    for m, (x0, y0, x1, y1) in zip(masks, boxes):
        assert 0 <= x0 <= x1 <= w and 0 <= y0 <= y1 <= h, ((x0, y0, x1, y1), size)
        if x1 - x0 >= 2 and y1 - y0 >= 2:  # the box survived: so did the mask
            assert m.any(), f"empty mask in box {(x0, y0, x1, y1)}"
        if not m.any():
            continue
        ys, xs = np.nonzero(m)
        extent = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        inside = (
            extent[0] >= x0 - TOL
            and extent[1] >= y0 - TOL
            and extent[2] <= x1 + TOL
            and extent[3] <= y1 + TOL
        )
        assert inside, f"mask extent {extent} leaves its box {(x0, y0, x1, y1)}"
        if recomputed:  # boxes from the masks: tight
            assert np.allclose(extent, (x0, y0, x1, y1), atol=TOL), (extent, (x0, y0, x1, y1))
        cut += int(x0 <= 0 or y0 <= 0 or x1 >= w or y1 >= h)
    return len(inst), cut


@pytest.mark.parametrize("name", sorted(MAPPERS))
def test_polygon_masks_stay_inside_their_boxes(name):
    mapper = _mapper(name, MAPPERS[name])
    recomputed = "copypaste" in name or getattr(mapper, "recompute_boxes", False)
    records = DatasetCatalog.get(RECORDS)
    assert all(isinstance(a["segmentation"], list) for r in records for a in r["annotations"])
    shapes, total = set(), 0
    for seed in SEEDS:
        for r in records:
            np.random.seed(seed)
            torch.manual_seed(seed)
            out = mapper(dict(r))
            n, _ = _check_sample(out, recomputed)
            total += n
            shapes.add(tuple(out["image"].shape[-2:]))
    assert total > 0, f"{name}: every object was dropped"
    augs = repr(getattr(mapper, "augmentations", ""))
    if "Rot90" in augs and "FixedSizeCrop" not in augs:  # some views were rotated
        assert any(h > w for h, w in shapes) and any(h < w for h, w in shapes), shapes


def test_lsj_crop_cuts_polygons_and_keeps_them_inside_their_boxes():
    """At LSJ's largest scale (x2.0 of the crop size: 2x larger images) every sample is
    cropped, so objects are cut by the crop (shapely's clip): they stay inside their boxes."""
    s = LSJ_SIZE
    opts = [
        "dataloader.train.mapper.augmentations.0.min_scale=2.0",
        "dataloader.train.mapper.augmentations.0.max_scale=2.0",
        f"dataloader.train.mapper.augmentations.0.target_height={s}",
        f"dataloader.train.mapper.augmentations.0.target_width={s}",
        f"dataloader.train.mapper.augmentations.1.crop_size=[{s},{s}]",
    ]
    mapper = instantiate(load_config("COCO/mask_rcnn_nasfpn_72ep.py", opts).dataloader.train.mapper)
    assert mapper.instance_mask_format == "polygon" and mapper.recompute_boxes
    cut = 0
    for seed in SEEDS:
        for r in DatasetCatalog.get(RECORDS):
            np.random.seed(seed)
            out = mapper(dict(r))
            assert tuple(out["image"].shape[-2:]) == (s, s)
            assert isinstance(out["instances"].gt_masks, PolygonMasks)
            cut += _check_sample(out, recomputed=True)[1]
    assert cut > 0, "no object was cut by the crop: the test did not exercise polygon clipping"
