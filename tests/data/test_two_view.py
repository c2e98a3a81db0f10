"""TwoViewProposalMapper: proposal ids stay aligned across the two views through scale jitter,
crop and flips; clipped-away proposals leave both views; missing caches name the fix."""

import numpy as np
import pytest
from PIL import Image

import detectron2.data.transforms as T
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from freezedet.data.proposals import ProposalCache
from freezedet.data.two_view import TwoViewProposalMapper, proposal_dataset_dicts

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
