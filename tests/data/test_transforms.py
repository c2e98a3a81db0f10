"""RandomRot90 / Rot90Transform: exact quarter turns of images, boxes and polygons."""

import numpy as np
import pytest

import detectron2.data.transforms as T
from detectron2.data import detection_utils as utils
from detectron2.structures import BoxMode
from freezedet.data.transforms import RandomRot90, Rot90Transform


def _image_with_box(h=30, w=50, box=(5, 8, 17, 20)):
    img = np.zeros((h, w, 3), np.uint8)
    x0, y0, x1, y1 = box
    img[y0:y1, x0:x1] = 255
    return img


@pytest.mark.parametrize("k", [0, 1, 2, 3, -1, 5])
def test_box_follows_the_pixels(k):
    box = (5, 8, 17, 20)
    img = _image_with_box(box=box)
    t = Rot90Transform(k, *img.shape[:2])
    out = t.apply_image(img)
    assert out.shape[:2] == (img.shape[:2] if k % 2 == 0 else img.shape[1::-1])
    ys, xs = np.nonzero(out[:, :, 0])
    pixels_box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    np.testing.assert_allclose(t.apply_box(np.array([box], np.float32))[0], pixels_box)


def test_matches_numpy_rot90_and_inverts():
    img = np.random.RandomState(0).randint(0, 255, (7, 11, 3)).astype(np.uint8)
    for k in range(4):
        t = Rot90Transform(k, 7, 11)
        out = t.apply_image(img)
        np.testing.assert_array_equal(out, np.rot90(img, k))
        np.testing.assert_array_equal(t.inverse().apply_image(out), img)
        coords = np.array([[1.5, 2.0], [11.0, 7.0], [0.0, 0.0]])
        np.testing.assert_allclose(t.inverse().apply_coords(t.apply_coords(coords.copy())), coords)


def test_annotations_and_polygons_through_detectron2_utils():
    img = _image_with_box()
    ann = {
        "bbox": [5, 8, 17, 20],
        "bbox_mode": BoxMode.XYXY_ABS,
        "category_id": 0,
        "segmentation": [[5, 8, 17, 8, 17, 20, 5, 20]],
    }
    aug_input = T.AugInput(img)
    tfm = T.AugmentationList([Rot90Transform(1, 30, 50)])(aug_input)
    out = utils.transform_instance_annotations(dict(ann), tfm, aug_input.image.shape[:2])
    np.testing.assert_allclose(out["bbox"], [8, 33, 20, 45])
    poly = out["segmentation"][0].reshape(-1, 2)
    np.testing.assert_allclose(poly.min(0), [8, 33])
    np.testing.assert_allclose(poly.max(0), [20, 45])


def test_random_rot90_draws_all_quarter_turns_uniformly():
    np.random.seed(0)
    img = np.zeros((4, 6, 3), np.uint8)
    ks = [RandomRot90().get_transform(img).k for _ in range(4000)]
    counts = np.bincount(ks, minlength=4) / len(ks)
    np.testing.assert_allclose(counts, 0.25, atol=0.03)
    assert all(RandomRot90(prob=0.0).get_transform(img).k == 0 for _ in range(50))
    with pytest.raises(AssertionError, match="prob=1.5"):
        RandomRot90(prob=1.5)
