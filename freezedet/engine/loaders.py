"""Data loaders built from a config with the pieces freezedet adds (one place for all loaders)."""

from detectron2.config import instantiate
from detectron2.utils.registry import locate

from ..data.mapper import FileNamingMapper

__all__ = ["instantiate_loader"]


def instantiate_loader(loader_cfg, **given):
    """Instantiate a data-loader LazyCall (``build_detection_{train,test}_loader`` or any callable
    taking ``dataset`` / ``mapper`` ...) argument by argument, with its mapper wrapped in
    :class:`~freezedet.data.mapper.FileNamingMapper` so that a failing record names its file.

    Args:
        loader_cfg: the LazyCall node (e.g. ``cfg.dataloader.test``).
        given: arguments already built (e.g. ``dataset=records``, ``sampler=...``); they replace
            the config's.
    """
    args = {k: instantiate(v) for k, v in loader_cfg.items() if k != "_target_" and k not in given}
    args.update(given)
    if args.get("mapper") is not None:
        args["mapper"] = FileNamingMapper(mapper=args["mapper"])
    target = loader_cfg._target_
    target = locate(target) if isinstance(target, str) else target
    return target(**args)
