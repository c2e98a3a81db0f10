# The Cascade R-CNN head block, defined once and applied to any two-stage model's roi_heads.
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.roi_heads import CascadeROIHeads, FastRCNNConvFCHead, FastRCNNOutputLayers

# (IoU threshold, box-delta weights) per stage. The weights are Cascade R-CNN's, also TF Model
# Garden's (official/vision/modeling/maskrcnn_model.py: _cascade_layer_to_weights).
_WEIGHTS = [(10, 10, 5, 5), (20, 20, 10, 10), (30, 30, 15, 15)]
# Cai & Vasconcelos, "Cascade R-CNN" (CVPR 2018) and detectron2: 0.5 / 0.6 / 0.7
CASCADE_STAGES = list(zip((0.5, 0.6, 0.7), _WEIGHTS))
# "Proper Reuse": official/projects/backbone_reuse/configs/experiments/faster_rcnn/
# *_cascade_*.yaml set roi_sampler.cascade_iou_thresholds [0.7, 0.8] after the first stage at
# foreground_iou_threshold 0.5 (official/vision/configs/maskrcnn.py default)
REFERENCE_CASCADE_STAGES = list(zip((0.5, 0.7, 0.8), _WEIGHTS))
# Copy-Paste EfficientNet-B7 (tensorflow/tpu projects/copy_paste/configs/
# cascade_maskrcnn_effb7_nasfpn_1280.yaml): fg_iou_thresh 0.6, cascade_iou_thresholds [0.7, 0.8]
COPY_PASTE_B7_CASCADE_STAGES = list(zip((0.6, 0.7, 0.8), _WEIGHTS))


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


def use_cascade_stages(roi_heads, stages):
    """Set the IoU threshold and box-delta weights of each stage of a CascadeROIHeads config
    node (config-time, in place); ``stages`` as :data:`CASCADE_STAGES`."""
    assert len(stages) == len(
        roi_heads.proposal_matchers
    ), f"{len(stages)} stages for {len(roi_heads.proposal_matchers)} cascade stages"
    for (iou, weights), matcher, pred in zip(
        stages, roi_heads.proposal_matchers, roi_heads.box_predictors
    ):
        matcher.thresholds = [iou]
        pred.box2box_transform.weights = weights
    return roi_heads
