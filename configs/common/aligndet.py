# AlignDet box-domain pre-training (Li et al., ICCV 2023) of any two-stage detector config.
from detectron2.config import LazyCall as L

from freezedet.engine.ema import MomentumUpdateHook
from freezedet.modeling.meta_arch import AlignDetPretrainer

# AlignDet's SGD learning rate per image: 0.02 for 8 GPUs x 2 images (liming-ai/AlignDet
# configs/_base_/schedules/schedule_1x.py, line 2), to scale linearly to a recipe's batch. The CPU
# fine-tuning recipes' 0.01 at batch 2 is 4x this, and the online heads then outrun the momentum
# copy (docs/results/aligndet_deepforest.md, "Diagnosis").
LR_PER_IMAGE = 0.02 / 16
# Weight of the RoI box regression during pre-training (AlignDet: 1). It trains the same box-head
# features as the contrastive loss; at weight 1 it drags them faster than the contrastive loss
# organises them and the loss returns to chance (docs/results/aligndet_deepforest.md,
# "Diagnosis": 150 iterations, weight 1: 0.98x chance; 0.1: 0.91x, top-1 40x its chance level).
BOX_REG_WEIGHT = 0.1


def aligndet_pretraining(
    detector, train, base_momentum=0.996, temperature=0.5, box_reg_weight=BOX_REG_WEIGHT
):
    """Wrap a two-stage ``detector`` config into an AlignDetPretrainer config (config-time).

    One pseudo-class ("object") with class-agnostic box regression, so the regressor transfers
    to any fine-tuning task, weighted ``box_reg_weight``; registers the momentum (EMA) hook in
    ``train.extra_hooks``. Returns the model config.
    """
    detector.roi_heads.num_classes = 1
    for p in detector.roi_heads.get("box_predictors") or [detector.roi_heads.box_predictor]:
        p.cls_agnostic_bbox_reg = True
        p.loss_weight = {"loss_box_reg": box_reg_weight}
    train.extra_hooks = [L(MomentumUpdateHook)(base_momentum=base_momentum)]
    # the RoI classifier (cls_score) gets no loss: the contrastive embedding replaces it
    train.ddp.find_unused_parameters = True
    train.eval_period = 0
    return L(AlignDetPretrainer)(detector=detector, temperature=temperature)
