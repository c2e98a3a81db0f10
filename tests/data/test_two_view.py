"""TwoViewProposalMapper: proposal ids stay aligned across the two views through scale jitter,
crop and flips; on a real tile the two views' boxes of a proposal show the same pixels once each
view's flips are undone (a box cut by one view's crop is cut alike in the other); clipped-away
proposals leave both views; missing caches name the fix."""

import numpy as np
import pytest
from PIL import Image

import detectron2.data.transforms as T
from detectron2.config import instantiate
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import detection_utils as utils
from detectron2.structures import BoxMode

from freezedet.data.proposals import ProposalCache
from freezedet.data.two_view import TwoViewProposalMapper, align_proposals, proposal_dataset_dicts
from freezedet.model_zoo import get_config

COLORS = [(250, 0, 0), (0, 250, 0), (0, 0, 250), (250, 250, 0), (0, 250, 250), (250, 0, 250)]


def _colour_image(tmp_path, size=96):
    """Six solid rectangles, one colour each, on black; their boxes are the proposals."""
    img = np.zeros((size, size, 3), np.uint8)
    boxes = []
    for i, c in enumerate(COLORS):
        x0, y0 = 4 + (i % 3) * 30, 8 + (i // 3) * 44
        img[y0 : y0 + 24, x0 : x0 + 26] = c
        boxes.append([x0, y0, x0 + 26, y0 + 24])
    path = str(tmp_path / "colours.png")
    Image.fromarray(img).save(path)
    boxes = np.asarray(boxes, np.float32)
    record = {"file_name": path, "image_id": 7, "height": size, "width": size}
    return record, boxes


def _mapper(scale=(0.6, 1.6), **kw):
    return TwoViewProposalMapper(
        augmentations=[
            T.ResizeScale(scale[0], scale[1], 96, 96, interp=Image.NEAREST),
            T.FixedSizeCrop((96, 96)),
            T.RandomFlip(horizontal=True),
            T.RandomFlip(horizontal=False, vertical=True),
        ],
        photometric=[],
        **kw,
    )


def _centre_colour(view, i):
    x0, y0, x1, y1 = view["instances"].gt_boxes.tensor[i].tolist()
    image = view["image"].numpy().transpose(1, 2, 0)  # RGB
    return tuple(int(v) for v in image[int((y0 + y1) / 2), int((x0 + x1) / 2)])


def test_views_keep_proposal_ids_aligned(tmp_path):
    record, boxes = _colour_image(tmp_path)
    mapper = _mapper()
    np.random.seed(0)
    dropped = 0
    for _ in range(20):
        out = mapper({**record, "proposal_boxes": boxes, "proposal_bbox_mode": BoxMode.XYXY_ABS})
        v1, v2 = out["views"]
        ids1, ids2 = v1["instances"].proposal_ids, v2["instances"].proposal_ids
        assert ids1.tolist() == ids2.tolist()
        assert ids1.tolist() == sorted(ids1.tolist()), "rank order is kept"
        assert len(v1["instances"]) == len(v2["instances"]) == len(ids1)
        dropped += len(boxes) - len(ids1)
        for view in (v1, v2):
            assert (view["instances"].gt_classes == 0).all()
            for i, pid in enumerate(ids1.tolist()):
                # the box still frames the rectangle of that proposal id: same colour
                assert _centre_colour(view, i) == COLORS[pid], (i, pid)
    assert dropped > 0, "scale up to 1.6 + crop must clip some proposals away"


def _unflipped_grey_crop(image, box, transforms, size=24):
    """The box's pixels (grey) with the view's flips undone, resized to ``size`` x ``size``."""
    x0, y0, x1, y1 = (int(round(c)) for c in box)
    crop = image[y0:y1, x0:x1].astype(np.float32).mean(-1)
    if sum(isinstance(t, T.HFlipTransform) for t in transforms.transforms) % 2:
        crop = crop[:, ::-1]
    if sum(isinstance(t, T.VFlipTransform) for t in transforms.transforms) % 2:
        crop = crop[::-1]
    return np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((size, size)))


def _corr(a, b):
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-6))


def test_views_show_the_same_content_on_a_real_tile():
    """The recipe's mapper (scale jitter 0.8-1.25, 400 px crop, h/v flips; photometric ops off)
    on a real DeepForest tile: box i of view 1 and box i of view 2, flips undone, show the same
    pixels, while box i against box i+1 does not. Proposals: the tile's tree boxes and a grid of
    100 px boxes, which the crops often cut."""
    cfg = get_config("DeepForest/aligndet_pretrain_faster_rcnn_fpn_effl0.py")
    cfg.dataloader.train.mapper.photometric = []
    cfg.dataloader.train.mapper.max_proposals = 200
    mapper = instantiate(cfg.dataloader.train.mapper)
    record = DatasetCatalog.get("deepforest_train")[0]
    grid = [[x, y, x + 100, y + 100] for x in range(0, 301, 75) for y in range(0, 301, 75)]
    boxes = np.asarray([a["bbox"] for a in record["annotations"]] + grid, np.float32)
    image = utils.read_image(record["file_name"], format="RGB")
    same, other = [], []
    for seed in range(6):
        np.random.seed(seed)
        out = mapper({**record, "proposal_boxes": boxes, "proposal_bbox_mode": BoxMode.XYXY_ABS})
        np.random.seed(seed)  # replay the mapper's draws to learn each view's transforms
        draws = [mapper.draw_view(image) for _ in range(2)]
        crops, sizes = [], []
        for (view_image, transforms), view in zip(draws, out["views"]):
            assert np.array_equal(view_image.transpose(2, 0, 1), view["image"].numpy())
            b = view["instances"].gt_boxes.tensor.numpy()
            crops.append([_unflipped_grey_crop(view_image, x, transforms) for x in b])
            sizes.append(np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]))
        large = np.minimum(*sizes) >= 24  # smaller boxes: rounding to whole pixels dominates
        assert large.sum() >= 10, large.sum()
        c1, c2 = crops
        same += [_corr(a, b) for a, b, ok in zip(c1, c2, large) if ok]
        other += [_corr(a, b) for a, b, ok in zip(c1, c2[1:] + c2[:1], large) if ok]
    same, other = np.asarray(same), np.asarray(other)
    assert same.min() > 0.8 and np.median(same) > 0.95, (same.min(), np.median(same))
    assert np.median(other) < 0.3, np.median(other)


def test_align_proposals_cuts_both_views_alike():
    """A crop that cuts a proposal in one view cuts it the same way in the other: both views'
    boxes map back to the same original region."""
    boxes = np.asarray([[10, 10, 50, 50], [60, 20, 90, 40], [0, 70, 8, 78]], np.float32)
    crop = T.TransformList([T.CropTransform(30, 0, 70, 100)])  # view 1: x in [30, 100)
    flip = T.TransformList([T.ResizeTransform(100, 100, 200, 200), T.HFlipTransform(200)])
    keep, (b1, b2) = align_proposals(boxes, [(crop, (100, 70)), (flip, (200, 200))], (100, 100), 4)
    assert keep.tolist() == [True, True, False]  # the third lies outside view 1's crop
    np.testing.assert_allclose(b1[:2], [[0, 10, 20, 50], [30, 20, 60, 40]])
    # view 2 = the same original regions (x from 30), scaled x2 and flipped
    np.testing.assert_allclose(b2[:2], [[100, 20, 140, 100], [20, 40, 80, 80]])
    rotate = T.TransformList([T.RotationTransform(100, 100, 30)])
    with pytest.raises(AssertionError, match="not an axis-aligned"):
        align_proposals(boxes, [(crop, (100, 70)), (rotate, (100, 100))], (100, 100), 4)


def test_photometric_op_and_max_proposals(tmp_path):
    record, boxes = _colour_image(tmp_path)
    mapper = TwoViewProposalMapper(
        augmentations=[],
        photometric=[T.RandomBrightness(0.5, 0.5)],
        max_proposals=4,
    )
    out = mapper({**record, "proposal_boxes": boxes})
    for view in out["views"]:
        assert view["instances"].proposal_ids.tolist() == [0, 1, 2, 3]
        assert _centre_colour(view, 0) == (125, 0, 0)  # brightness x0.5 applied
        assert np.allclose(view["instances"].gt_boxes.tensor.numpy(), boxes[:4])


def test_missing_cache_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="tools/selective_search.py --dataset dummy_ds"):
        proposal_dataset_dicts("dummy_ds", proposal_file=str(tmp_path / "none.json"))


def test_proposal_dataset_dicts_drops_labels(tmp_path):
    record, boxes = _colour_image(tmp_path)
    name = "two_view_test_ds"
    if name not in DatasetCatalog.list():
        DatasetCatalog.register(name, lambda: [{**record, "annotations": []}])
        MetadataCatalog.get(name).set(thing_classes=["x"])
    cache = ProposalCache(str(tmp_path / "p.json"), params={}, dataset=name, num_images=1)
    cache.add(7, boxes=boxes, height=96, width=96)
    cache.save()
    (d,) = proposal_dataset_dicts(name, proposal_file=str(tmp_path / "p.json"))
    assert "annotations" not in d
    assert np.allclose(d["proposal_boxes"], boxes)
