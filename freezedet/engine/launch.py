"""The command line of freezedet's training: ``python -m freezedet.engine.launch`` (what
``tools/train_net.py`` runs, and what :mod:`freezedet.analysis.study` starts per run, so it works
from an installed package too). Arguments: :func:`freezedet.engine.cli.argument_parser`.

This module is not imported by ``freezedet.engine``: ``python -m`` runs it as ``__main__``
without a second copy in ``sys.modules``.
"""

from .. import compat
from .cli import argument_parser
from .train_net import main

__all__ = ["run"]


def run(args):
    """Launch :func:`freezedet.engine.train_net.main` on every process (``--num-gpus`` per
    machine: GPUs, or CPU processes with gloo)."""
    return compat.launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )


if __name__ == "__main__":
    import os
    import sys

    from ..utils.errors import DEBUG_ENV, call_main

    args = argument_parser(prog="python -m freezedet.engine.launch").parse_args()
    if args.debug:
        os.environ[DEBUG_ENV] = "1"
    sys.exit(call_main(run, args, prog="freezedet"))
