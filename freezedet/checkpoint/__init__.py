from .aligndet import InitWeightsCheckpointer, load_init_weights
from .checkpointer import AtomicDetectionCheckpointer
from .convert import *  # noqa: F401,F403
from .convert import __all__ as _convert_all
from .packaged import *  # noqa: F401,F403
from .packaged import __all__ as _packaged_all

__all__ = ["AtomicDetectionCheckpointer", "InitWeightsCheckpointer", "load_init_weights"]
__all__ += _convert_all + _packaged_all
