"""The registered dataset names behind a config's dataset node, whatever entry point it uses."""

from typing import List

__all__ = ["dataset_names"]


def dataset_names(dataset_cfg) -> List[str]:
    """Names a dataset LazyCall registers or reads: ``names`` (``checked_dataset_dicts``, str or
    list) or ``name`` (``coco_json_dataset``, ``lvis_json_dataset``); ``[]`` if it has neither.

    Metadata (``thing_classes``) of a name registered by the call itself exists only after the
    node has been instantiated once in this process."""
    if dataset_cfg is None or not hasattr(dataset_cfg, "get"):
        return []
    names = dataset_cfg.get("names", None)
    if names is None:
        names = dataset_cfg.get("name", None)
    if names is None:
        return []
    return [names] if isinstance(names, str) else [str(n) for n in names]
