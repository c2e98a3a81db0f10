"""Config loading and checking, shared by the engine, analysis and inference (which import it;
it imports none of them), and what a recipe chooses by name on the command line: its trunk and
its mode (:mod:`freezedet.config.trunks`)."""

from .keys import accepted_arguments, check_call_arguments, check_override_keys
from .loading import default_output_dir, load_config, resolve_config_file
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

__all__ = [
    "accepted_arguments",
    "check_call_arguments",
    "check_override_keys",
    "default_output_dir",
    "load_config",
    "resolve_config_file",
    "MODES",
    "TRUNKS",
    "TrunkMode",
    "TrunkRecord",
    "apply_trunk_and_mode",
    "run_output_dir",
    "select_trunk_and_mode",
    "use_trunk",
]
