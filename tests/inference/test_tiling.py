"""Tiled prediction: tile grid and cores, merging across tile borders, cropped masks, and a
4000 x 3000 mosaic of real DeepForest tiles, with an exact stand-in detector (it finds painted
magenta shapes, cut off at tile edges as a real detector's view is), so that the merged result
can be compared with the painted truth exactly."""

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch

from detectron2.data import DatasetCatalog
from detectron2.structures import Boxes, Instances
from freezedet.data.image_io import read_image_for_model
from freezedet.inference import CroppedMasks, Predictor, merge_detections, tile_grid
from freezedet.inference.tiling import tile_cores, tile_origins

MAGENTA = (255, 0, 255)


class PaintedShapeDetector(torch.nn.Module):
    """Detects each connected magenta region of its input as one object (class 0, score from
    its area), with its exact bitmask; records the batch sizes it is called with."""

    def __init__(self, with_masks=False):
        super().__init__()
        self.with_masks = with_masks
        self.batches = []

    def forward(self, batched_inputs):
        self.batches.append(len(batched_inputs))
        outputs = []
        for item in batched_inputs:
            image = item["image"].permute(1, 2, 0).numpy()
            hit = np.all(image == np.array(MAGENTA, dtype=np.uint8), axis=-1).astype(np.uint8)
            n, labels, stats, _ = cv2.connectedComponentsWithStats(hit, connectivity=4)
            x, y, w, h, area = (stats[1:, i] for i in range(5))
            inst = Instances(hit.shape)
            boxes = np.stack([x, y, x + w, y + h], axis=1).astype(np.float32).reshape(-1, 4)
            inst.pred_boxes = Boxes(torch.from_numpy(boxes))
            inst.scores = torch.from_numpy(0.5 + area / (2.0 * hit.size)).float()
            inst.pred_classes = torch.zeros(n - 1, dtype=torch.long)
            if self.with_masks:
                inst.pred_masks = torch.from_numpy(labels[None] == np.arange(1, n)[:, None, None])
            outputs.append({"instances": inst})
        return outputs


def _predictor(model, **kwargs):
    return Predictor(model=model, input_format="RGB", **kwargs)


def _sorted_boxes(instances):
    boxes = instances.pred_boxes.tensor.numpy()
    return boxes[np.lexsort(boxes.T[::-1])]


def _paint_rectangles(image, boxes):
    for x0, y0, x1, y1 in boxes:
        image[y0:y1, x0:x1] = MAGENTA


def test_tile_origins_cover_the_image_and_align_the_last_tile():
    assert tile_origins(1000, 400, 0.25) == [0, 300, 600]
    assert tile_origins(1001, 400, 0.25) == [0, 300, 600, 601]
    assert tile_origins(399, 400, 0.5) == [0]
    assert tile_grid(300, 350, 400, 0.25) == [(0, 0, 350, 300)]  # one tile: the image
    for length, tile, overlap in [(1000, 400, 0.25), (4000, 512, 0.1), (777, 100, 0.5)]:
        origins = tile_origins(length, tile, overlap)
        assert origins[0] == 0 and origins[-1] + tile == length, origins
        gaps = np.diff(origins)
        assert (gaps <= tile * (1 - overlap) + 1).all() and (gaps > 0).all(), gaps


def test_tile_cores_partition_the_image():
    height, width = 700, 1000
    cores = tile_cores(height, width, 256, 0.3)
    grid = tile_grid(height, width, 256, 0.3)
    assert len(cores) == len(grid) == 4 * 6, (len(cores), len(grid))  # stride 179, edge-aligned
    ys, xs = np.mgrid[0:height:7, 0:width:7] + 0.5
    owners = np.zeros(ys.shape, dtype=int)
    for (cx0, cy0, cx1, cy1), (x0, y0, x1, y1) in zip(cores, grid):
        inside = (xs >= cx0) & (xs < cx1) & (ys >= cy0) & (ys < cy1)
        owners += inside
        # a core lies inside its tile
        assert (xs[inside] >= x0).all() and (xs[inside] < x1).all()
        assert (ys[inside] >= y0).all() and (ys[inside] < y1).all()
    assert (owners == 1).all(), np.unique(owners)


def test_shapes_across_tile_borders_are_merged_into_one_box():
    image = np.full((500, 700, 3), 90, np.uint8)
    # tiles of 256 px with stride 192: edges at 192, 256, 384, 448 (x) and 192, 244, 256 (y)
    truth = [
        (236, 40, 276, 70),  # across x = 256 (and the overlap [192, 256))
        (180, 150, 215, 185),  # across x = 192
        (430, 230, 470, 262),  # across x = 448 and y = 244 / 256: four tiles see a part
        (20, 300, 60, 330),  # inside one tile
        (600, 440, 650, 499),  # at the image's bottom-right tile
    ]
    _paint_rectangles(image, truth)
    expected = np.array(sorted(truth), dtype=np.float32)
    for merge in ("nms", "wbf"):
        model = PaintedShapeDetector()
        predictor = _predictor(model, tile_size=256, overlap=0.25, merge=merge, batch_size=3)
        got = predictor(image)
        assert got.image_size == (500, 700), got.image_size
        # box fusion divides a score-weighted sum: float rounding only
        np.testing.assert_allclose(_sorted_boxes(got), expected, rtol=0, atol=1e-3)
        n_tiles = len(tile_grid(500, 700, 256, 0.25))
        assert sum(model.batches) == n_tiles and max(model.batches) == 3, model.batches
    # without tile cores, the cut-off views of a shape overlap its whole box too little for
    # NMS, and survive as extra boxes
    loose = _predictor(PaintedShapeDetector(), tile_size=256, overlap=0.25, tile_cores=False)
    assert len(loose(image)) > len(truth), len(loose(image))


def test_masks_across_tile_borders_are_kept_whole():
    height, width = 300, 420
    image = np.full((height, width, 3), 60, np.uint8)
    truth = np.zeros((3, height, width), np.uint8)
    for k, (cx, cy, r) in enumerate([(160, 100, 22), (20, 250, 15), (300, 160, 30)]):
        cv2.circle(truth[k], (cx, cy), r, 1, -1)
        image[truth[k] > 0] = MAGENTA
    predictor = _predictor(PaintedShapeDetector(with_masks=True), tile_size=160, overlap=0.4)
    got = predictor(image)
    assert isinstance(got.pred_masks, CroppedMasks) and len(got) == 3, got
    decoded = mask_util.decode(got.pred_masks.to_rle()).transpose(2, 0, 1)
    order = np.argsort([-m.sum() for m in decoded])
    expected = truth[np.argsort([-m.sum() for m in truth])]
    np.testing.assert_array_equal(decoded[order], expected)


def test_mosaic_of_real_tiles_4000x3000():
    """A 4000 x 3000 mosaic of the real DeepForest tiles with 80 painted shapes: tiled
    prediction in batches recovers exactly the painted boxes."""
    tiles = [
        read_image_for_model(r["file_name"], "RGB") for r in DatasetCatalog.get("deepforest_val")
    ]
    height, width = 3000, 4000
    mosaic = np.zeros((height, width, 3), np.uint8)
    k = 0
    for y in range(0, height, 400):
        for x in range(0, width, 400):
            tile = tiles[k % len(tiles)]
            mosaic[y : y + 400, x : x + 400] = tile[: height - y, : width - x]
            k += 1
    assert not np.all(mosaic == np.array(MAGENTA, np.uint8), axis=-1).any()
    rng = np.random.RandomState(0)
    truth, taken = [], np.zeros((height, width), bool)
    while len(truth) < 80:
        w, h = rng.randint(12, 70, size=2)
        x0, y0 = rng.randint(0, width - w), rng.randint(0, height - h)
        if taken[max(0, y0 - 2) : y0 + h + 2, max(0, x0 - 2) : x0 + w + 2].any():
            continue
        taken[y0 : y0 + h, x0 : x0 + w] = True
        truth.append((x0, y0, x0 + w, y0 + h))
    _paint_rectangles(mosaic, truth)
    model = PaintedShapeDetector()
    predictor = _predictor(model, tile_size=400, overlap=0.2, batch_size=8)
    got = predictor(mosaic)
    np.testing.assert_array_equal(_sorted_boxes(got), np.array(sorted(truth), np.float32))
    n_tiles = len(tile_grid(height, width, 400, 0.2))
    assert n_tiles == 13 * 10, n_tiles  # stride 320: 12 + 1 edge-aligned columns, 9 + 1 rows
    assert sum(model.batches) == n_tiles and max(model.batches) == 8, (n_tiles, model.batches)


def _instances(boxes, scores, classes):
    inst = Instances((100, 100))
    inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
    inst.scores = torch.tensor(scores)
    inst.pred_classes = torch.tensor(classes)
    return inst


def test_nms_and_box_fusion_merge_class_by_class():
    inst = _instances(
        [[10, 10, 50, 50], [12, 10, 52, 50], [10, 10, 50, 50], [70, 70, 90, 90]],
        [0.9, 0.6, 0.8, 0.7],
        [0, 0, 1, 0],
    )
    nms = merge_detections(inst, "nms", 0.5)
    assert nms.scores.tolist() == pytest.approx([0.9, 0.8, 0.7]), nms.scores
    assert nms.pred_classes.tolist() == [0, 1, 0]
    wbf = merge_detections(inst, "wbf", 0.5)
    assert wbf.scores.tolist() == pytest.approx([0.9, 0.8, 0.7]), wbf.scores
    fused = (0.9 * torch.tensor([10.0, 10, 50, 50]) + 0.6 * torch.tensor([12.0, 10, 52, 50])) / 1.5
    assert torch.allclose(wbf.pred_boxes.tensor[0], fused), wbf.pred_boxes.tensor[0]
    assert torch.equal(wbf.pred_boxes.tensor[1:], nms.pred_boxes.tensor[1:])
    with pytest.raises(AssertionError, match="not one of"):
        merge_detections(inst, "soft-nms")


def test_cropped_masks_rle_index_and_cat():
    rng = np.random.RandomState(0)
    full = torch.zeros(3, 40, 60, dtype=torch.bool)
    full[0, 5:20, 10:30] = torch.from_numpy(rng.rand(15, 20) > 0.3)
    full[1, 30:40, 50:60] = True  # touches the bottom-right corner
    masks = CroppedMasks.from_bitmasks(full[:, 2:38, 4:56], offset=(4, 2), image_size=(40, 60))
    masks = CroppedMasks.cat([masks[torch.tensor([True, False, False])], masks[1:]])
    rles = masks.to_rle()
    expected = full.clone()
    expected[1] = False
    expected[1, 30:38, 50:56] = True  # what the 36 x 52 window saw of mask 1
    decoded = mask_util.decode(rles).transpose(2, 0, 1)
    np.testing.assert_array_equal(decoded, expected.numpy())
    assert masks.area().tolist() == expected.sum(dim=(1, 2)).tolist()
    reference = mask_util.encode(np.asfortranarray(expected[0].numpy().astype(np.uint8)))
    assert rles[0]["counts"] == reference["counts"].decode(), "RLE differs from pycocotools"
    assert masks.polygons()[2] == [] and len(masks.polygons()[1]) == 1
