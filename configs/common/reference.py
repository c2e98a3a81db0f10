# Pyramid levels, anchors and RoI pooling of the "Proper Reuse" reference, per neck, defined
# once (config-time, in place). TF Model Garden's Mask R-CNN (official/vision/configs/
# maskrcnn.py) with official/projects/backbone_reuse/configs/experiments/faster_rcnn/*.yaml:
#   anchor: anchor_size 8 (x the level's stride), num_scales 1, aspect ratios 0.5 / 1 / 2
#   FPN yamls: no min/max_level -> maskrcnn.py defaults 2..6: C2-C5 in, P2-P6 out
#   NAS-FPN yamls: min_level 3, max_level 7: P3-P7; decoder.nasfpn not set -> TF Vision's
#     default num_repeats 5 (official/vision/configs/decoders.py)
#   RoI align (roi_aligner.py / multilevel_crop_and_resize) pools from every level
#     min_level..max_level, canonical size 224 at level 4: what detectron2's ROIPooler does
#     with the same levels
from detectron2.config import LazyCall as L

from freezedet.modeling.neck import LastLevelP6Conv

from .models.reference_heads import REFERENCE_ACTIVATION, REFERENCE_NORM

# anchor_size 8: an anchor of 8 strides per level
ANCHOR_STRIDES = 8


def _levels(model, levels):
    names = [f"p{lvl}" for lvl in levels]
    strides = [2**lvl for lvl in levels]
    rpn = model.proposal_generator
    rpn.in_features = names
    rpn.anchor_generator.strides = strides
    rpn.anchor_generator.sizes = [[ANCHOR_STRIDES * s] for s in strides]
    rh = model.roi_heads
    rh.box_in_features = names
    rh.box_pooler.scales = [1.0 / s for s in strides]


def reference_nasfpn(model, num_repeats=5, norm=REFERENCE_NORM, activation=REFERENCE_ACTIVATION):
    """NAS-FPN as the backbone_reuse NAS-FPN configs build it: 5 repeats, SyncBN, swish;
    anchors 64-1024 px on P3-P7 and RoI pooling from P3-P7."""
    model.backbone.update(num_repeats=num_repeats, norm=norm, activation=activation)
    _levels(model, range(3, 8))
    return model


def reference_fpn(model, norm=REFERENCE_NORM):
    """FPN as the backbone_reuse FPN configs build it: C2-C5 in (set the trunk's out_features
    to its C2-C5 names), P2-P6 out with P6 a stride-2 conv of P5 plus norm (TF fpn.py), SyncBN;
    anchors 32-512 px on P2-P6 and RoI pooling from P2-P6. detectron2's FPN also normalises the
    lateral convs, TF only the outputs (a remaining difference)."""
    model.backbone.norm = norm
    model.backbone.top_block = L(LastLevelP6Conv)(
        channels="${..out_channels}", in_feature="p5", norm=norm
    )
    _levels(model, range(2, 7))
    return model
