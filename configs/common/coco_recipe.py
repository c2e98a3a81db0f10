# The "Proper Reuse" COCO training recipe, defined once: batch 64, SGD, step schedule.
from .schedule import step_schedule

COCO_TRAIN_IMAGES = 118287


def epochs_to_iters(epochs, batch_size=64):
    return int(round(epochs * COCO_TRAIN_IMAGES / batch_size))


def coco_recipe(model, train, optimizer, epochs=72, batch_size=64):
    """Schedule in COCO train2017 epochs, SGD lr 0.08 (batch 64), 80 classes (in place).

    Returns the LR multiplier.
    """
    max_iter = epochs_to_iters(epochs, batch_size)
    train.max_iter = max_iter
    train.eval_period = max_iter // 12
    train.checkpointer.period = max_iter // 24
    optimizer.lr = 0.08 * batch_size / 64
    optimizer.weight_decay = 4e-5
    if "roi_heads" in model:
        model.roi_heads.num_classes = 80
    else:
        model.num_classes = 80
    return step_schedule(max_iter, warmup_iters=1000)
