from .convert import *  # noqa: F401,F403
from .convert import __all__  # noqa: F401
