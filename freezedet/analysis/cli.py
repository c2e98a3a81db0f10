"""The command line of ``tools/analyze_model.py``.

Only the standard library is imported here, so ``--help`` and argument errors answer without
importing torch or detectron2 (seconds on a small machine): the tool loads this file on its own
before anything else. Keep it that way.
"""

import argparse

__all__ = ["analyze_argument_parser"]

_DEBUG_HELP = "show the traceback of an input error (FREEZEDET_DEBUG=1 does the same)"


def analyze_argument_parser(description: str = "", prog: str = "analyze_model.py"):
    """The arguments of ``tools/analyze_model.py``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config-file", nargs="+", required=True, help="one or more configs")
    parser.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help="also count inference FLOPs at this input size",
    )
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="key=value overrides")
    return parser
