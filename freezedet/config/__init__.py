"""What a recipe chooses by name on the command line: its trunk and its mode
(:mod:`freezedet.config.trunks`)."""

from .trunks import (
    MODES,
    TRUNKS,
    TrunkMode,
    TrunkRecord,
    apply_trunk_and_mode,
    run_output_dir,
    select_trunk_and_mode,
    use_trunk,
)

__all__ = [k for k in globals().keys() if not k.startswith("_")]
