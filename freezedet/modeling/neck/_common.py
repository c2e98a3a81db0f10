"""What the necks on C3-C5 of a classifier trunk (NAS-FPN, the plain capacity neck) share, and
what their yacs builders share."""

from typing import Dict, List, Sequence

import fvcore.nn.weight_init as weight_init
from torch import nn

from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.modeling import BACKBONE_REGISTRY, Backbone

__all__ = ["build_bottom_up", "check_c3_c5", "make_laterals"]


def build_bottom_up(cfg, input_shape: ShapeSpec) -> Backbone:
    """yacs: the bottom-up backbone of a freezedet neck builder, built by the
    ``BACKBONE_REGISTRY`` name ``cfg.MODEL.FREEZEDET.BOTTOM_UP`` (the classifier trunk of
    ``MODEL.FREEZEDET.TRUNK`` by default; ``build_resnet_backbone`` puts the neck on detectron2's
    ResNet)."""
    if "FREEZEDET" not in cfg.MODEL:
        raise KeyError(
            "cfg.MODEL.FREEZEDET is missing: call freezedet.config.add_freezedet_config(cfg) "
            "before merging a freezedet YAML"
        )
    name = cfg.MODEL.FREEZEDET.BOTTOM_UP
    if name not in BACKBONE_REGISTRY:
        raise KeyError(
            f"MODEL.FREEZEDET.BOTTOM_UP={name!r} is not in BACKBONE_REGISTRY; registered: "
            f"{sorted(k for k, _ in BACKBONE_REGISTRY)}"
        )
    return BACKBONE_REGISTRY.get(name)(cfg, input_shape)


def check_c3_c5(
    bottom_up: Backbone, in_features: Sequence[str], owner: str, min_level: int = 3
) -> Dict[str, ShapeSpec]:
    """Check that ``in_features`` of ``bottom_up`` are C3, C4, C5 (strides 8, 16, 32), or
    C``min_level`` ... C5 if given; returns ``bottom_up``'s output shapes. ``owner`` names the
    neck in the error messages."""
    assert isinstance(bottom_up, Backbone), f"bottom_up must be a Backbone, got {type(bottom_up)}"
    shapes = bottom_up.output_shape()
    missing = [f for f in in_features if f not in shapes]
    assert not missing, f"in_features {missing} not among bottom_up outputs {list(shapes)}"
    strides = [shapes[f].stride for f in in_features]
    levels = range(min_level, 6)
    expected = [2**level for level in levels]
    assert strides == expected, (
        f"{owner} needs {', '.join(f'C{level}' for level in levels)} (strides "
        f"{', '.join(map(str, expected))}); in_features {list(in_features)} have strides "
        f"{strides}"
    )
    return shapes


def make_laterals(
    shapes: Dict[str, ShapeSpec], in_features: Sequence[str], out_channels: int, norm: str
) -> nn.ModuleList:
    """1x1 conv + norm per input level (bias only without norm), initialised like detectron2's
    FPN (``c2_xavier_fill``)."""
    laterals: List[nn.Module] = []
    for f in in_features:
        conv = Conv2d(
            shapes[f].channels, out_channels, 1, bias=not norm, norm=get_norm(norm, out_channels)
        )
        weight_init.c2_xavier_fill(conv)
        laterals.append(conv)
    return nn.ModuleList(laterals)
