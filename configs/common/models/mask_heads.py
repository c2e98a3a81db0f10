# The Mask R-CNN mask branch, defined once and added to any two-stage model's roi_heads.
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.poolers import ROIPooler
from detectron2.modeling.roi_heads import MaskRCNNConvUpsampleHead


def add_mask_head(roi_heads, conv_dims=(256, 256, 256, 256, 256)):
    """Add the mask pooler + head on the box features' levels (config-time, in place)."""
    roi_heads.update(
        mask_in_features="${.box_in_features}",
        mask_pooler=L(ROIPooler)(
            output_size=14,
            scales="${..box_pooler.scales}",
            sampling_ratio=0,
            pooler_type="ROIAlignV2",
        ),
        mask_head=L(MaskRCNNConvUpsampleHead)(
            input_shape=L(ShapeSpec)(channels="${....backbone.out_channels}", width=14, height=14),
            num_classes="${..num_classes}",
            conv_dims=list(conv_dims),
        ),
    )
    return roi_heads
