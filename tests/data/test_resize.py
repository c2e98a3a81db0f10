"""ResizeShortestEdgeScaled, and the own-data recipes' one image-size override."""

import numpy as np
import pytest

from detectron2.config import instantiate
from freezedet.data.resize import ResizeShortestEdgeScaled
from freezedet.engine import load_config

OWN_DATA = (
    "OwnData/faster_rcnn_fpn.py",
    "OwnData/mask_rcnn_fpn.py",
    "OwnData/faster_rcnn_fpn_cpu.py",
    "OwnData/mask_rcnn_fpn_cpu.py",
)


def test_lengths_are_size_times_scales():
    aug = ResizeShortestEdgeScaled(size=640, scales=(0.8, 0.9, 1.0, 1.1, 1.2), max_size=1333)
    assert list(aug.short_edge_length) == [512, 576, 640, 704, 768], aug.short_edge_length
    assert not aug.is_range and aug.max_size == 1333
    np.random.seed(0)
    image = np.zeros((300, 400, 3), np.uint8)
    shorts = {aug.get_transform(image).apply_image(image).shape[0] for _ in range(60)}
    assert shorts == {512, 576, 640, 704, 768}, shorts
    ranged = ResizeShortestEdgeScaled(size=100, scales=(0.5, 1.5), sample_style="range")
    assert list(ranged.short_edge_length) == [50, 150] and ranged.is_range
    # the cap on the longest side still holds: 300 x 4000 at 512 would be 6827 wide
    wide = ResizeShortestEdgeScaled(size=512, max_size=1333)
    out = wide.get_transform(np.zeros((300, 4000, 3), np.uint8)).apply_image(
        np.zeros((300, 4000, 3), np.uint8)
    )
    assert out.shape[1] == 1333 and out.shape[0] < 512, out.shape
    assert "size=512" in repr(wide), repr(wide)


@pytest.mark.parametrize(
    "bad", [dict(size=0), dict(size=640, scales=()), dict(size=64, scales=(0,))]
)
def test_bad_sizes_are_errors(bad):
    with pytest.raises(AssertionError, match="must be positive"):
        ResizeShortestEdgeScaled(**bad)


@pytest.mark.parametrize("name", OWN_DATA)
def test_image_size_sets_train_and_test_sizes(name):
    """``dataloader.image_size=X``: test shortest side X, train 0.8-1.2 X; nothing else moves."""
    default = load_config(name)
    cfg = load_config(name, ["dataloader.image_size=320"])
    assert cfg.dataloader.image_size == 320 != default.dataloader.image_size
    train = instantiate(cfg.dataloader.train.mapper.augmentations[0])
    test = instantiate(cfg.dataloader.test.mapper.augmentations[0])
    assert list(train.short_edge_length) == [256, 288, 320, 352, 384], train.short_edge_length
    assert list(test.short_edge_length) == [320, 320] and test.max_size == train.max_size == 1333
    image = np.zeros((200, 300, 3), np.uint8)
    assert test.get_transform(image).apply_image(image).shape[:2] == (320, 480)
    size = default.dataloader.image_size
    default_train = instantiate(default.dataloader.train.mapper.augmentations[0])
    default_test = instantiate(default.dataloader.test.mapper.augmentations[0])
    assert default_test.short_edge_length[0] == size
    assert list(default_train.short_edge_length) == [round(size * s) for s in train.scales]
