"""The rule for images that are not 8-bit (freezedet.data.bit_depth)."""

import numpy as np
import pytest
from PIL import Image

from freezedet.data.bit_depth import HighBitDepthError, open_uint8, parse_rule, to_uint8


def test_rules_parse_and_bad_rules_are_errors():
    assert parse_rule("error") == ("error", (0.0, 0.0))
    assert parse_rule("percentile") == ("percentile", (0.5, 99.5))
    assert parse_rule("percentile:1,99") == ("percentile", (1.0, 99.0))
    assert parse_rule("range:0,65535") == ("range", (0.0, 65535.0))
    for bad in ("percent", "range", "range:5,5", "percentile:10,200", "range:a,b", None):
        with pytest.raises(ValueError, match="high_bit_depth rule"):
            parse_rule(bad)


def test_to_uint8_range_and_percentile():
    values = np.array([[0, 1000, 2000], [3000, 4095, 60000]], np.uint16)
    np.testing.assert_array_equal(to_uint8(values, "range:0,4095"), [[0, 62, 125], [187, 255, 255]])
    ramp = np.arange(1000.0)
    out = to_uint8(ramp, "percentile:10,90")
    assert out[:100].max() == 0 and out[900:].min() == 255  # below / above the percentiles
    assert out[500] == 128  # the middle maps to the middle
    nan = np.array([np.nan, 0.0, 1.0, np.inf], np.float32)
    np.testing.assert_array_equal(to_uint8(nan, "range:0,1"), [0, 0, 255, 255])
    assert to_uint8(np.full((3, 3), 7, np.uint16), "percentile").max() == 0  # constant image


def test_open_uint8(tmp_path):
    f32 = tmp_path / "float.tif"
    Image.fromarray(np.linspace(0, 1, 100, dtype=np.float32).reshape(10, 10)).save(f32)
    with pytest.raises(HighBitDepthError, match=r"float.tif is not 8-bit \(PIL mode 'F'\)"):
        open_uint8(str(f32), "error")
    im = open_uint8(str(f32), "range:0,1")
    assert im.mode == "L" and np.asarray(im)[9, 9] == 255 and np.asarray(im)[0, 0] == 0
    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.full((4, 4, 3), 200, np.uint8)).save(rgb)
    assert np.asarray(open_uint8(str(rgb), "error")).max() == 200  # 8-bit: unchanged
