"""Images that are not 8-bit (16-bit PNG / TIFF, 32-bit integer or float TIFF): one documented rule
turns them into the 8-bit images the models and ImageNet trunks expect, or they are refused.

detectron2's ``read_image`` converts such an image with PIL's ``convert("RGB")``, which clips
every value above 255: a 16-bit microscopy image becomes almost entirely white and training still
"works". freezedet never lets that happen silently. A rule is a string:

- ``"error"`` (the default): refuse the image, naming the file and this option;
- ``"percentile"`` or ``"percentile:LOW,HIGH"``: per image, map the LOW-th percentile to 0 and the
  HIGH-th to 255 (linear, clipped; default 0.5 and 99.5). Contrast is normalised per image, so
  absolute intensities are not comparable between images;
- ``"range:LOW,HIGH"``: map the fixed value LOW to 0 and HIGH to 255 (linear, clipped), the
  same for every image, e.g. ``"range:0,4095"`` for a 12-bit camera or ``"range:0,65535"`` for
  the full 16-bit range. Use it when intensities mean something across images.

Multi-channel images are scaled with one LOW / HIGH for all channels. :func:`to_uint8` is the
rule itself (an array in, an 8-bit array out); :func:`open_uint8` reads a file with it. The
dataset validator (:mod:`freezedet.data.validate`, option ``high_bit_depth``) applies it to every
image of a dataset; a predictor reading single images can call :func:`open_uint8` with the rule
the model was trained with.
"""

from typing import Tuple

import numpy as np
from PIL import Image, ImageOps

from ..utils.errors import UserError, UserValueError

__all__ = [
    "DEFAULT_PERCENTILES",
    "is_high_bit_depth",
    "parse_rule",
    "to_uint8",
    "open_uint8",
    "HighBitDepthError",
]

DEFAULT_PERCENTILES = (0.5, 99.5)


class HighBitDepthError(UserError, ValueError):
    """An image is not 8-bit and the rule is ``"error"``."""


def is_high_bit_depth(mode: str) -> bool:
    """Whether a PIL image mode holds more than 8 bits per channel ("I", "I;16*", "F")."""
    return mode.startswith(("I", "F"))


def parse_rule(rule: str) -> Tuple[str, Tuple[float, float]]:
    """``(kind, (low, high))`` of a rule string (see the module docstring); checks it."""
    if not isinstance(rule, str):
        raise UserValueError(f"high_bit_depth rule {rule!r} is not a string")
    kind, _, args = rule.partition(":")
    if kind == "error" and not args:
        return kind, (0.0, 0.0)
    if kind == "percentile" and not args:
        return kind, DEFAULT_PERCENTILES
    if kind in ("percentile", "range"):
        try:
            low, high = (float(v) for v in args.split(","))
        except ValueError:
            low = high = None
        if low is not None and low < high and (kind == "range" or 0 <= low and high <= 100):
            return kind, (low, high)
    raise UserValueError(
        f"high_bit_depth rule {rule!r}: use 'error', 'percentile', 'percentile:LOW,HIGH' "
        "(0 <= LOW < HIGH <= 100) or 'range:LOW,HIGH' (LOW < HIGH, in the image's values)"
    )


def to_uint8(array: np.ndarray, rule: str) -> np.ndarray:
    """Map an image array of any numeric dtype to uint8 by ``rule`` (not ``"error"``).

    Args:
        array (np.ndarray): HxW or HxWxC image (e.g. ``np.asarray`` of a 16-bit PIL image).
        rule (str): ``"percentile[:LOW,HIGH]"`` or ``"range:LOW,HIGH"``.

    Returns:
        np.ndarray: uint8 array of the same shape.
    """
    kind, (low, high) = parse_rule(rule)
    assert kind != "error", "to_uint8 needs a conversion rule, not 'error'"
    values = np.asarray(array, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if kind == "percentile":
        if finite.size == 0:
            return np.zeros(values.shape, np.uint8)
        low, high = np.percentile(finite, [low, high])
    scale = 255.0 / (high - low) if high > low else 0.0
    values = np.nan_to_num(values, nan=low, posinf=high, neginf=low)
    return np.clip(np.round((values - low) * scale), 0, 255).astype(np.uint8)


def open_uint8(path: str, rule: str) -> Image.Image:
    """Read ``path`` as an 8-bit PIL image (EXIF orientation applied): 8-bit files unchanged,
    others converted by ``rule``, or refused with :class:`HighBitDepthError` if it is "error"."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if not is_high_bit_depth(im.mode):
            im.load()
            return im
        if parse_rule(rule)[0] == "error":
            raise HighBitDepthError(
                f"image {path} is not 8-bit (PIL mode {im.mode!r}); detectron2 would clip its "
                "values above 255. Choose how to convert it: high_bit_depth='percentile' (per "
                "image), or 'range:LOW,HIGH' (fixed, e.g. 'range:0,4095' for 12-bit data), e.g. "
                "dataloader.train.dataset.high_bit_depth=percentile (and the same for "
                "dataloader.test.dataset)."
            )
        return Image.fromarray(to_uint8(np.asarray(im), rule))
