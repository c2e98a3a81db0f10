# The training side of fitting a COCO-style recipe to a small dataset (DeepForest, labelme) on a
# CPU, defined once. What changes in the model (classes, RoIs, anchors, neck width) is written in
# each recipe, as dotted assignments.
from .schedule import step_schedule


def cpu_schedule(train, optimizer, max_iter=300):
    """A short schedule, checkpoints every 100 iterations, evaluation at the end, clipped
    gradients, lr 0.01 at batch 2 (config-time, in place).

    Returns the LR multiplier for ``max_iter`` iterations.
    """
    train.max_iter = max_iter
    train.eval_period = 0
    train.checkpointer.period = 100
    train.log_period = 20
    train.clip_grad.enabled = True
    train.clip_grad.clip_value = 10.0
    optimizer.lr = 0.01
    return step_schedule(max_iter, warmup_iters=50)
