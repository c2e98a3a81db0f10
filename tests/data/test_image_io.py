"""read_image_for_model: detectron2's training-time conversion for 8-bit modes, a clear error
naming the file for everything else."""

import numpy as np
import pytest
from PIL import Image

from detectron2.data.detection_utils import read_image
from freezedet.data.bit_depth import to_uint8
from freezedet.data.image_io import ImageReadError, UnsupportedImageError, read_image_for_model


def _rgb(h=12, w=16, seed=0):
    return (np.random.RandomState(seed).rand(h, w, 3) * 255).astype(np.uint8)


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "LA", "RGBA", "1", "CMYK"])
@pytest.mark.parametrize("fmt", ["RGB", "BGR"])
def test_8bit_modes_convert_as_the_training_mapper(tmp_path, mode, fmt):
    path = str(tmp_path / ("im.tif" if mode == "CMYK" else "im.png"))
    Image.fromarray(_rgb()).convert(mode).save(path)
    ours = read_image_for_model(path, fmt)
    assert ours.dtype == np.uint8 and ours.shape == (12, 16, 3), (ours.dtype, ours.shape)
    np.testing.assert_array_equal(ours, read_image(path, format=fmt))
    if mode == "RGB":
        expected = _rgb() if fmt == "RGB" else _rgb()[:, :, ::-1]
        np.testing.assert_array_equal(ours, expected)


def test_exif_orientation_is_applied_like_detectron2(tmp_path):
    path = str(tmp_path / "rotated.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(_rgb(10, 20)).save(path, exif=exif)
    ours = read_image_for_model(path, "RGB")
    assert ours.shape == (20, 10, 3), ours.shape
    np.testing.assert_array_equal(ours, read_image(path, format="RGB"))


@pytest.mark.parametrize(
    "name, array",
    [
        ("gray16.png", (np.arange(12 * 16).reshape(12, 16) * 300).astype(np.uint16)),
        ("float.tif", np.linspace(0, 1, 12 * 16, dtype=np.float32).reshape(12, 16)),
        ("int32.tif", np.arange(12 * 16, dtype=np.int32).reshape(12, 16)),
    ],
)
def test_high_bit_depth_is_refused_naming_the_file(tmp_path, name, array):
    path = str(tmp_path / name)
    Image.fromarray(array).save(path)
    bits = 16 if array.dtype == np.uint16 else 32
    with pytest.raises(UnsupportedImageError, match=rf"{name}: {bits}-bit image.*high_bit_depth"):
        read_image_for_model(path, "RGB")
    # the dataset's rule (what the validator applies in training) converts it instead
    for rule in ("percentile", f"range:0,{array.max()}"):
        ours = read_image_for_model(path, "RGB", high_bit_depth=rule)
        gray = to_uint8(array, rule)
        assert ours.shape == (12, 16, 3) and ours.dtype == np.uint8, (ours.shape, ours.dtype)
        np.testing.assert_array_equal(ours, np.repeat(gray[:, :, None], 3, axis=2))
        assert ours.max() > 200 and ours.min() < 10, rule  # scaled, not clipped at 255


def test_16bit_rgb_png_is_refused_although_pil_reports_rgb(tmp_path):
    import cv2

    path = str(tmp_path / "rgb16.png")
    cv2.imwrite(path, (np.random.RandomState(0).rand(8, 8, 3) * 65535).astype(np.uint16))
    assert Image.open(path).mode == "RGB"  # PIL silently keeps the high byte
    with pytest.raises(UnsupportedImageError, match=r"rgb16.png: 16-bit image \(PIL mode RGB"):
        read_image_for_model(path, "BGR")
    with pytest.raises(UnsupportedImageError, match="only the high byte"):
        read_image_for_model(path, "BGR", high_bit_depth="percentile")


def test_unreadable_files_name_the_file(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ImageReadError, match=r"notes.png: not an image file \(.png\)"):
        read_image_for_model(str(text), "RGB")
    truncated = tmp_path / "cut.png"
    Image.fromarray(_rgb(64, 64)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(ImageReadError, match=r"cut.png: cannot read the image"):
        read_image_for_model(str(truncated), "RGB")
    with pytest.raises(ImageReadError, match=r"missing.png: no such file"):
        read_image_for_model(str(tmp_path / "missing.png"), "RGB")
