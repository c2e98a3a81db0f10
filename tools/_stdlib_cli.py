"""One helper of the tools: a module of the freezedet package loaded from its file without
importing the package (``import freezedet`` imports torch and detectron2: seconds), so that
``--help`` and argument errors answer at once. Only modules that import nothing but the standard
library may be loaded this way (the argument parsers: ``freezedet/*/cli.py``).

The tools import it as a sibling (``python tools/X.py`` puts ``tools/`` first on ``sys.path``).
"""

import importlib.util
import os


def load_stdlib_module(*parts: str):
    """``freezedet/<parts...>`` (e.g. ``"engine", "cli.py"``), loaded from its file."""
    package = importlib.util.find_spec("freezedet")
    path = os.path.join(package.submodule_search_locations[0], *parts)
    spec = importlib.util.spec_from_file_location("_freezedet_" + "_".join(parts)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
