"""yacs builders of detectron2's FPN on a freezedet trunk: the FPN of
``configs/common/models/faster_rcnn_fpn.py`` and, on a plain ViT, the simple feature pyramid +
FPN of ``faster_rcnn_simplefpn.py`` (ViTDet, Li et al., ECCV 2022)."""

from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from detectron2.modeling.backbone import FPN
from detectron2.modeling.backbone.fpn import LastLevelMaxPool

from ..backbone.vit import ViTBackbone
from ._common import build_bottom_up

__all__ = ["build_freezedet_fpn_backbone", "build_freezedet_simplefpn_backbone"]


def _fpn(cfg, bottom_up: Backbone) -> FPN:
    # every level of the trunk goes in, as the model files' in_features="${.bottom_up.out_features}"
    return FPN(
        bottom_up=bottom_up,
        in_features=list(bottom_up.output_shape()),
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )


@BACKBONE_REGISTRY.register()
def build_freezedet_fpn_backbone(cfg, input_shape: ShapeSpec):
    """yacs (after ``freezedet.config.add_freezedet_config``): FPN (``MODEL.FPN.{OUT_CHANNELS,
    NORM, FUSE_TYPE}``, ``LastLevelMaxPool``) on every level of the bottom-up backbone of
    ``MODEL.FREEZEDET.BOTTOM_UP``: C3-C5 give P3-P6."""
    return _fpn(cfg, build_bottom_up(cfg, input_shape))


@BACKBONE_REGISTRY.register()
def build_freezedet_simplefpn_backbone(cfg, input_shape: ShapeSpec):
    """yacs: a plain ViT trunk (``MODEL.FREEZEDET.TRUNK.NAME`` a ViT record), its simple feature
    pyramid (``MODEL.FREEZEDET.VIT.*``, levels ``MODEL.FREEZEDET.TRUNK.OUT_FEATURES``: C2-C5),
    and FPN on it (P2-P6), as ``configs/common/models/faster_rcnn_simplefpn.py``."""
    bottom_up = build_bottom_up(cfg, input_shape)
    if not isinstance(bottom_up, ViTBackbone):
        raise ValueError(
            f"build_freezedet_simplefpn_backbone needs a ViT trunk; MODEL.FREEZEDET.TRUNK.NAME="
            f"{cfg.MODEL.FREEZEDET.TRUNK.NAME!r} (MODEL.FREEZEDET.BOTTOM_UP="
            f"{cfg.MODEL.FREEZEDET.BOTTOM_UP!r}) built a {type(bottom_up).__name__}; use "
            "build_freezedet_fpn_backbone for CNN trunks"
        )
    return _fpn(cfg, bottom_up)
