# The Cascade R-CNN head block, defined once and applied to any two-stage model's roi_heads.
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.roi_heads import CascadeROIHeads, FastRCNNConvFCHead, FastRCNNOutputLayers

# (IoU threshold, box-delta weights) per stage, as in Cascade R-CNN
CASCADE_STAGES = [(0.5, (10, 10, 5, 5)), (0.6, (20, 20, 10, 10)), (0.7, (30, 30, 15, 15))]
# the TF "Proper Reuse" config's two extra stages on top of the default three
EXTRA_STAGES = [(0.7, (40, 40, 20, 20)), (0.8, (50, 50, 25, 25))]


def make_cascade_roi_heads(roi_heads, stages=CASCADE_STAGES, conv_dims=(), fc_dims=(1024, 1024)):
    """Turn a StandardROIHeads config node into CascadeROIHeads in place.

    Called while the config file is executed (not a lazy call); the result is plain config data.
    Channels are interpolated from the model's backbone (``${....backbone.out_channels}``).
    """
    for key in ("box_head", "box_predictor", "proposal_matcher"):
        roi_heads.pop(key, None)
    roi_heads.update(
        _target_=CascadeROIHeads,
        box_heads=[
            L(FastRCNNConvFCHead)(
                input_shape=L(ShapeSpec)(
                    channels="${.....backbone.out_channels}", height=7, width=7
                ),
                conv_dims=list(conv_dims),
                fc_dims=list(fc_dims),
                conv_norm="",
            )
            for _ in stages
        ],
        box_predictors=[
            L(FastRCNNOutputLayers)(
                input_shape=L(ShapeSpec)(channels=fc_dims[-1] if fc_dims else conv_dims[-1]),
                test_score_thresh=0.05,
                test_topk_per_image=100,
                box2box_transform=L(Box2BoxTransform)(weights=weights),
                cls_agnostic_bbox_reg=True,
                num_classes="${...num_classes}",
            )
            for _, weights in stages
        ],
        proposal_matchers=[
            L(Matcher)(thresholds=[iou], labels=[0, 1], allow_low_quality_matches=False)
            for iou, _ in stages
        ],
    )
    return roi_heads
