# The LVIS v1 training recipe, defined once: COCO's SGD recipe, schedule in LVIS epochs,
# 1203 classes, LVIS's test protocol (300 detections per image, score threshold 1e-4).
from .schedule import step_schedule

LVIS_V1_TRAIN_IMAGES = 100170


def lvis_recipe(model, train, optimizer, epochs=72, batch_size=64, lr=0.08, warmup_iters=1000):
    """In place; returns the LR multiplier. ``lr`` is for batch 64 (scaled linearly)."""
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
    return step_schedule(max_iter, warmup_iters=min(warmup_iters, max_iter // 10))
