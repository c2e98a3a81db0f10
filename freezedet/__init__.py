"""freezedet: detectron2 detection on frozen, reused image-classification backbones."""

from . import compat  # noqa: F401  (applies detectron2-version shims before anything else)
from .utils import file_io  # noqa: F401  (registers the freezedet:// path handler)
from . import data, modeling  # noqa: F401  (register datasets, backbones, heads)
from .inference import Predictor  # noqa: F401  (the public prediction API: freezedet.Predictor)

__version__ = "0.1.0"
