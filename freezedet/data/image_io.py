"""Reading a user's image file for a model, the one place where image modes are converted.

The rule is detectron2's ``read_image`` (what ``DatasetMapper`` does in training and
evaluation): the EXIF orientation is applied, then PIL converts the image to the model's format,
so grayscale (``L``, ``1``), palette (``P``), ``LA``, ``RGBA`` (alpha dropped, not composited),
``CMYK`` and ``YCbCr`` images become 8-bit RGB (flipped to BGR for BGR models).

Images with more than 8 bits per channel (16-bit grayscale, 32-bit integer, float) are
converted by the dataset's ``high_bit_depth`` rule (:mod:`freezedet.data.bit_depth`, the rule the
dataset validator applies in training), or refused with an error naming the file and the option
when the rule is "error" (the default): PIL's own conversion is not a scaling a model was trained
with (16-bit grayscale is clipped at 255). 16-bit RGB files are always refused: PIL decodes only
their high byte, so no rule can be applied to what it returns.
"""

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from detectron2.data.detection_utils import _apply_exif_orientation, convert_PIL_to_numpy
from detectron2.utils.file_io import PathManager

from ..utils.errors import UserError
from .bit_depth import is_high_bit_depth, parse_rule, to_uint8

__all__ = ["ImageReadError", "UnsupportedImageError", "read_image_for_model"]


class ImageReadError(UserError, ValueError):
    """A file that cannot be read as an image (missing, not an image, truncated)."""


class UnsupportedImageError(ImageReadError):
    """An image whose pixel format has no conversion rule for a model (e.g. 16-bit)."""


def _raw_mode(image: Image.Image) -> str:
    """The decoder's raw mode (``"RGB;16B"`` for a 16-bit RGB PNG that PIL reports as RGB)."""
    if not getattr(image, "tile", None):
        return image.mode
    args = image.tile[0][3]
    return args[0] if isinstance(args, tuple) else str(args)


def _bits_per_channel(image: Image.Image) -> int:
    raw = _raw_mode(image)
    if ";16" in raw or image.mode.startswith("I;16"):
        return 16
    if ";32" in raw or image.mode in ("I", "F"):
        return 32
    return 8


def read_image_for_model(path: str, format: str, high_bit_depth: str = "error") -> np.ndarray:
    """Read ``path`` as the HWC uint8 array a model with input format ``format`` expects.

    Args:
        path (str): an image file (any ``PathManager`` path).
        format (str): the model's input format, "RGB" or "BGR" (or any PIL mode, e.g. "L").
        high_bit_depth (str): the rule for images of more than 8 bits per channel
            (:mod:`freezedet.data.bit_depth`): "error", "percentile[:LOW,HIGH]" or
            "range:LOW,HIGH"; use the rule the model's training data was converted with.

    Returns:
        np.ndarray: (H, W, C) uint8, converted as detectron2's ``read_image`` does in training.

    Raises:
        ImageReadError: naming the file, when it is missing or not a readable image.
        UnsupportedImageError: naming the file, its pixel format and the option, for images of
            more than 8 bits per channel that ``high_bit_depth`` does not convert.
    """
    rule = parse_rule(high_bit_depth)[0]
    if not PathManager.isfile(path):
        raise ImageReadError(f"{path}: no such file")
    try:
        with PathManager.open(path, "rb") as f:
            image = Image.open(f)
            bits = _bits_per_channel(image)
            if bits > 8 and (rule == "error" or not is_high_bit_depth(image.mode)):
                how = (
                    "PIL decodes only the high byte of 16-bit RGB files: convert it to 8 bits "
                    "with the scaling your training data used"
                    if rule != "error"
                    else "choose a conversion rule, high_bit_depth='percentile' or "
                    "'range:LOW,HIGH' (freezedet.data.bit_depth), as for the training data"
                )
                raise UnsupportedImageError(
                    f"{path}: {bits}-bit image (PIL mode {image.mode}, raw {_raw_mode(image)}); "
                    f"{how}."
                )
            image = _apply_exif_orientation(image)
            if bits > 8:
                image = Image.fromarray(to_uint8(np.asarray(image), high_bit_depth))
            array = convert_PIL_to_numpy(image, format)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        ext = os.path.splitext(path)[1] or "no extension"
        raise ImageReadError(f"{path}: not an image file ({ext})") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt data
        raise ImageReadError(f"{path}: cannot read the image ({e})") from e
    return np.ascontiguousarray(array)
