"""Config loading and checking, shared by the engine, analysis and inference (which import it;
it imports none of them), and what a recipe chooses by name on the command line: its trunk and
its mode (:mod:`freezedet.config.trunks`); and the yacs route's keys (:mod:`freezedet.config.yacs`:
``add_freezedet_config`` for detectron2's ``get_cfg()`` + ``DefaultTrainer`` projects)."""

from .keys import accepted_arguments, check_call_arguments, check_override_keys
from .loading import (
    RENAMED_CONFIGS,
    RunFiles,
    default_output_dir,
    load_config,
    renamed_config_hint,
    resolve_config_file,
    resolve_run,
    run_weights,
)
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
from .yacs import (
    add_freezedet_config,
    apply_trunk_record,
    build_freezedet_trunk_backbone,
    trunk_record_values,
)

__all__ = [
    "accepted_arguments",
    "check_call_arguments",
    "check_override_keys",
    "default_output_dir",
    "load_config",
    "resolve_config_file",
    "RENAMED_CONFIGS",
    "RunFiles",
    "renamed_config_hint",
    "resolve_run",
    "run_weights",
    "MODES",
    "TRUNKS",
    "TrunkMode",
    "TrunkRecord",
    "apply_trunk_and_mode",
    "run_output_dir",
    "select_trunk_and_mode",
    "use_trunk",
    "add_freezedet_config",
    "apply_trunk_record",
    "build_freezedet_trunk_backbone",
    "trunk_record_values",
]
