"""Parameter accounting per detector component: what freezing saves, in numbers."""

from collections import OrderedDict
from typing import Dict

from torch import nn

__all__ = ["component_of", "parameter_table", "format_parameter_table"]

# (prefix, component) in match order; the first matching prefix wins
_COMPONENTS = (
    # a plain ViT's simple feature pyramid (ViTBackbone): trained even on a frozen trunk
    ("backbone.bottom_up.pyramid.", "pyramid"),
    ("backbone.bottom_up.", "trunk"),
    ("backbone.", "neck"),
    ("proposal_generator.", "rpn"),
    ("roi_heads.", "roi_heads"),
    ("head.", "head"),
)


def component_of(name: str) -> str:
    """The component a parameter belongs to; adapters inside the trunk are their own row."""
    name = name[len("module.") :] if name.startswith("module.") else name
    for prefix, component in _COMPONENTS:
        if name.startswith(prefix):
            if component == "trunk" and ".adapter" in name:
                return "adapters"
            return component
    return "other"


def parameter_table(model: nn.Module) -> Dict[str, Dict[str, int]]:
    """``{component: {"total": n, "trainable": m}}`` plus a ``"total"`` row."""
    rows = OrderedDict()
    seen = set()
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        row = rows.setdefault(component_of(name), {"total": 0, "trainable": 0})
        row["total"] += p.numel()
        row["trainable"] += p.numel() if p.requires_grad else 0
    order = ["trunk", "adapters"] + [c for _, c in _COMPONENTS if c != "trunk"]
    rows = OrderedDict((k, rows[k]) for k in order + ["other"] if k in rows)
    rows["total"] = {
        "total": sum(r["total"] for r in rows.values()),
        "trainable": sum(r["trainable"] for r in rows.values()),
    }
    return rows


def format_parameter_table(rows: Dict[str, Dict[str, int]]) -> str:
    from tabulate import tabulate

    total = rows["total"]["total"] or 1
    body = [
        (
            name,
            f"{r['total'] / 1e6:.3f}M",
            f"{r['trainable'] / 1e6:.3f}M",
            f"{100.0 * r['trainable'] / total:.1f}%",
        )
        for name, r in rows.items()
    ]
    return tabulate(
        body, headers=["component", "params", "trainable", "trainable % of all"], tablefmt="pipe"
    )
