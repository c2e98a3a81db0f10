# The LVIS v1 training recipe, defined once: COCO's SGD recipe (configs/common/coco_recipe.py),
# schedule in LVIS epochs, 1203 classes, LVIS's test protocol (300 detections per image, score
# threshold 1e-4). The backbone_reuse project ships no LVIS config, so the LR (0.16 at batch 64)
# and milestones (REF_72EP for 72 epochs) are the COCO ones: unverified for LVIS.
from .coco_recipe import TF_WARMUP_ITERS, TF_WARMUP_LR
from .schedule import reference_milestones, step_schedule

LVIS_V1_TRAIN_IMAGES = 100170


def lvis_recipe(
    model,
    train,
    optimizer,
    epochs=72,
    batch_size=64,
    lr=0.16,
    warmup_iters=TF_WARMUP_ITERS,
    milestones=None,
):
    """In place; returns the LR multiplier. ``lr`` is for batch 64 (scaled linearly);
    ``milestones`` None: the reference milestones of ``epochs`` (an error for other lengths)."""
    milestones = reference_milestones(epochs, milestones)
    max_iter = int(round(epochs * LVIS_V1_TRAIN_IMAGES / batch_size))
    train.max_iter = max_iter
    train.eval_period = max_iter // 6
    train.checkpointer.period = max_iter // 12
    optimizer.lr = lr * batch_size / 64
    optimizer.weight_decay = 4e-5
    rh = model.roi_heads
    rh.num_classes = 1203
    for p in rh.box_predictors if "box_predictors" in rh else [rh.box_predictor]:
        p.test_score_thresh = 1e-4
        p.test_topk_per_image = 300
    return step_schedule(
        max_iter,
        warmup_iters=min(warmup_iters, max_iter // 10),
        milestones=milestones,
        warmup_factor=min(1.0, TF_WARMUP_LR / lr),
    )
