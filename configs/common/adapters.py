# Residual adapters inside the frozen trunk ("Proper Reuse", Sec. 5): how a recipe adds them.
from detectron2.config import LazyCall as L

from freezedet.modeling.backbone import with_residual_adapters


def use_adapters(model, kind="parallel", stages=None, norm=None):
    """Wrap ``model.backbone.bottom_up`` so adapters are added when it is built (config-time)."""
    model.backbone.bottom_up = L(with_residual_adapters)(
        backbone=model.backbone.bottom_up, kind=kind, stages=stages, norm=norm
    )
    model.backbone.in_features = "${.bottom_up.backbone.out_features}"
