# The RPN, RoI box and mask heads of the "Proper Reuse" reference, defined once and applied to
# any two-stage model (Faster / Cascade / Mask R-CNN): TF Model Garden's Mask R-CNN as
# official/projects/backbone_reuse/configs/experiments/faster_rcnn/*.yaml configures it on top
# of official/vision/configs/maskrcnn.py:
#   rpn_head: num_convs 1 (maskrcnn.py RPNHead default), conv -> norm (per level) -> activation
#   detection_head: num_convs 4 (DetectionHead default) + num_fcs 2 (the yamls), fc_dims 1024,
#     each conv and fc followed by norm and activation
#   norm_activation: activation swish (the yamls), use_sync_bn true (maskrcnn.py default)
#   mask_head: num_convs 4, BN (factory.py passes no use_sync_bn to the MaskHead) + activation
# Not reproduced: TF's BN momentum 0.997 / epsilon 1e-4 (detectron2's defaults 0.1 / 1e-5 are
# used) and the mask head's activation (detectron2's MaskRCNNConvUpsampleHead is ReLU-only).
# detectron2's heads (StandardRPNHead, FastRCNNConvFCHead 2fc, ReLU, no norm) stay the model
# files' default; CPU recipes keep them.
from detectron2.config import LazyCall as L

from freezedet.modeling.proposal_generator import NormRPNHead
from freezedet.modeling.roi_heads import ConvFCNormHead

REFERENCE_NORM = "SyncBN"
REFERENCE_ACTIVATION = "swish"


def use_reference_heads(
    model,
    norm=REFERENCE_NORM,
    activation=REFERENCE_ACTIVATION,
    rpn_conv_dims=(256,),
    box_conv_dims=(256, 256, 256, 256),
    box_fc_dims=(1024, 1024),
    mask_norm="BN",
):
    """Replace the RPN head and every RoI box head of a two-stage ``model`` config by the
    reference's, and normalise the mask head's convs (config-time, in place).

    The RPN head's anchors per position are taken from the anchor generator as configured now:
    set anchor sizes / aspect ratios before calling this.
    """
    rpn = model.proposal_generator
    anchors = rpn.anchor_generator
    rpn.head = L(NormRPNHead)(
        in_channels="${...backbone.out_channels}",
        num_anchors=len(anchors.aspect_ratios) * len(anchors.sizes[0]),
        in_features="${..in_features}",
        conv_dims=list(rpn_conv_dims),
        norm=norm,
        activation=activation,
    )
    rh = model.roi_heads
    for head in rh.box_heads if "box_heads" in rh else [rh.box_head]:
        head.update(
            _target_=ConvFCNormHead,
            conv_dims=list(box_conv_dims),
            fc_dims=list(box_fc_dims),
            norm=norm,
            activation=activation,
        )
        head.pop("conv_norm", None)
    for pred in rh.box_predictors if "box_predictors" in rh else [rh.box_predictor]:
        pred.input_shape.channels = box_fc_dims[-1]
    if "mask_head" in rh:
        rh.mask_head.conv_norm = mask_norm
    return model
