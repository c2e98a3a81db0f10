"""Config loading and checking, shared by the engine, analysis and inference (which import it;
it imports none of them)."""

from .keys import accepted_arguments, check_call_arguments, check_override_keys
from .loading import default_output_dir, load_config, resolve_config_file

__all__ = [
    "accepted_arguments",
    "check_call_arguments",
    "check_override_keys",
    "default_output_dir",
    "load_config",
    "resolve_config_file",
]
