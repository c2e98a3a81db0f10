"""Config keys checked at load time: a typo is an error naming the closest valid keys, not an
ignored value (LazyConfig creates any key it is given) or a ``TypeError`` deep inside
``instantiate`` minutes later.

- :func:`check_call_arguments`: every key of every LazyCall node is an argument its target
  accepts (read from the target's signature: a class's ``__init__`` — for detectron2's
  ``@configurable`` constructors the wrapped ``__init__`` — or a function's parameters). A class
  whose ``__init__`` takes ``**kwargs`` is taken to hand them to its base class, as detectron2's
  ``StandardROIHeads`` or ``MaskRCNNConvUpsampleHead`` do: its arguments are its own plus its
  bases'. A function taking ``**kwargs`` (or a class whose chain of bases ends in one) accepts
  anything.
- :func:`check_override_keys`: a ``key=value`` override names an existing key, or a new
  argument of a LazyCall that its target accepts.
"""

import difflib
import inspect
from typing import List, Optional, Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf

from detectron2.utils.registry import locate

from ..utils.errors import UserKeyError, UserValueError

__all__ = ["accepted_arguments", "check_call_arguments", "check_override_keys"]

_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _named_parameters(fn):
    """(names, takes **kwargs) of a callable, or None if it has no inspectable signature."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature
        return None
    names = [p.name for p in params if p.kind in _NAMED]
    return names, any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params)


def accepted_arguments(target) -> Optional[List[str]]:
    """Keyword arguments ``target`` (a callable or its dotted name) accepts; None when that is
    unknown (``**kwargs`` that reach no base class, no inspectable signature): anything is
    accepted then. See the module docstring."""
    if isinstance(target, str):
        try:
            target = locate(target)
        except Exception:
            return None  # instantiate reports an unknown target itself
    if not inspect.isclass(target):
        found = _named_parameters(target)
        return None if found is None or found[1] else found[0]
    names = []
    for cls in target.__mro__:
        if "__init__" not in vars(cls):
            continue
        if cls is object:
            return None  # **kwargs all the way up: unknown
        found = _named_parameters(cls.__init__)
        if found is None:
            return None
        names += [n for n in found[0] if n != "self" and n not in names]
        if not found[1]:
            return names
    return None


def _target_name(target) -> str:
    return target if isinstance(target, str) else getattr(target, "__qualname__", repr(target))


def _closest(word: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=3, cutoff=0.5)
    return f"closest: {', '.join(close)}; " if close else ""


def _walk(node, path: str):
    """(path, dict) of every LazyCall node in a plain container tree."""
    if isinstance(node, dict):
        if "_target_" in node:
            yield path, node
        for k, v in node.items():
            yield from _walk(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}.{i}" if path else str(i))


def check_call_arguments(cfg, source: str):
    """Raise ``KeyError`` if a LazyCall node of ``cfg`` has a key its target does not accept.

    Args:
        cfg: a loaded LazyConfig.
        source (str): the config's name, for messages.
    """
    tree = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else cfg
    for path, node in _walk(tree, ""):
        accepted = accepted_arguments(node["_target_"])
        if accepted is None:
            continue
        unknown = [k for k in node if k != "_target_" and k not in accepted]
        if unknown:
            name = _target_name(node["_target_"])
            raise UserKeyError(
                f"config {source}: {path} calls {name}, which has no argument "
                f"{', '.join(repr(k) for k in unknown)} ({_closest(unknown[0], accepted)}"
                f"its arguments: {accepted})"
            )


def check_override_keys(cfg, overrides: Sequence[str], source: str):
    """Raise if an override ``key=value`` names a key that neither exists nor is an argument
    its LazyCall accepts (see the module docstring)."""
    for item in overrides:
        if item.startswith("--"):
            # argparse's REMAINDER takes everything after the first override, flags included
            raise UserValueError(
                f"override {item!r} is an option, not key=value: options (--resume, --eval-only, "
                "--num-gpus ...) go before the key=value overrides on the command line"
            )
        if "=" not in item:
            raise UserValueError(f"override {item!r} is not of the form key=value")
        key = item.split("=", 1)[0]
        node, parts = cfg, key.split(".")
        for i, part in enumerate(parts):
            if isinstance(node, (list, ListConfig)):  # e.g. box_predictors.0.test_score_thresh
                has = part.isdigit() and int(part) < len(node)
                part = int(part) if has else part
            else:
                has = part in node if hasattr(node, "__contains__") else hasattr(node, part)
            if has:
                node = node[part]
                continue
            known = sorted(str(k) for k in node.keys()) if hasattr(node, "keys") else []
            is_call = hasattr(node, "get") and "_target_" in node
            if is_call and i == len(parts) - 1:
                accepted = accepted_arguments(node._target_)
                if accepted is None or part in accepted:
                    break  # a new constructor argument of an existing LazyCall
                raise UserKeyError(
                    f"override {item!r}: config {source} has no key "
                    f"'{'.'.join(parts[: i + 1])}', and {_target_name(node._target_)} takes no "
                    f"argument {part!r} ({_closest(part, accepted)}its arguments: {accepted})"
                )
            raise UserKeyError(
                f"override {item!r}: config {source} has no key "
                f"'{'.'.join(parts[: i + 1])}' ({_closest(str(part), known)}"
                f"keys at that level: {known})"
            )
