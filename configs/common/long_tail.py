# Long-tail (LVIS) options, defined once: the class-balanced box-predictor loss of stage 2.
from detectron2.config import LazyCall as L

from freezedet.data.lvis import DatasetClassCounts
from freezedet.modeling.roi_heads import ClassBalancedFastRCNNOutputLayers


def use_class_balanced_loss(
    model,
    loss="federated",
    beta=0.0,
    num_fed_classes=50,
    count="instances",
    counts_from="${dataloader.train.dataset.name}",
):
    """Switch every box predictor of ``model`` (StandardROIHeads or each Cascade stage) to
    :class:`ClassBalancedFastRCNNOutputLayers` (config-time, in place). ``count``: what the
    effective number of samples counts, "instances" (Cui et al.) or "images". Class counts are
    read from the training dataset's metadata on the first step (``counts_from``: the datasets'
    names), as detectron2's LVIS recipe hands its box predictor ``get_fed_loss_cls_weights``."""
    rh = model.roi_heads
    predictors = rh.box_predictors if "box_predictors" in rh else [rh.box_predictor]
    for p in predictors:
        p._target_ = ClassBalancedFastRCNNOutputLayers
        p.loss = loss
        p.class_balance_beta = beta
        p.class_balance_count = count
        p.num_fed_classes = num_fed_classes
        p.class_counts = L(DatasetClassCounts)(dataset_names=counts_from)
