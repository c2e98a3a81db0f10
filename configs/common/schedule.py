# Step LR schedules and the reference milestones (fractions of training) per schedule length.
from fvcore.common.param_scheduler import MultiStepParamScheduler

from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler

# "Proper Reuse" 72-epoch configs (TF Model Garden official/projects/backbone_reuse/configs/
# experiments/{faster_rcnn,retinanet}/*_72epochs.yaml): train_steps 133056, stepwise
# boundaries [88704, 125664] (RetinaNet: 33264, [22176, 31416]) -> 2/3 and 17/18
REF_72EP = (2 / 3, 17 / 18)
# the 600-epoch configs (*_600epochs.yaml): 1108940 steps, boundaries [1062734, 1090458]
REF_600EP = (23 / 24, 59 / 60)
# Copy-Paste Cascade EfficientNet-B7 NAS-FPN (tensorflow/tpu projects/copy_paste/configs/
# cascade_maskrcnn_effb7_nasfpn_1280.yaml): 180000 steps, learning_rate_steps
# [162000, 171000, 175500] -> three x0.1 decays
REF_COPYPASTE_B7 = (0.9, 0.95, 0.975)
# freezedet's earlier milestones, still the default of recipes that name none (CPU recipes)
DEFAULT_MILESTONES = (8 / 9, 17 / 18)
# the reference milestones by schedule length in epochs
REF_MILESTONES = {72: REF_72EP, 600: REF_600EP}


def reference_milestones(epochs, milestones=None):
    """``milestones`` if given, else the reference milestones of an ``epochs``-long schedule
    (an error naming the known lengths for any other)."""
    if milestones is not None:
        return milestones
    if epochs not in REF_MILESTONES:
        raise ValueError(
            f"no reference milestones for {epochs} epochs (known: {sorted(REF_MILESTONES)});"
            " pass milestones=(fractions of training) explicitly"
        )
    return REF_MILESTONES[epochs]


def step_schedule(max_iter, warmup_iters=500, milestones=DEFAULT_MILESTONES, warmup_factor=0.067):
    """Linear warmup, then x0.1 at each milestone (fractions of ``max_iter``, increasing).

    Called while the config is written (not a lazy call), so the config stays plain data.
    ``warmup_factor`` is the LR multiplier at iteration 0.
    """
    milestones = [float(m) for m in milestones]
    assert (
        milestones == sorted(milestones) and 0 < milestones[0] and milestones[-1] < 1
    ), f"milestones must be increasing fractions in (0, 1), got {milestones}"
    return L(WarmupParamScheduler)(
        scheduler=L(MultiStepParamScheduler)(
            values=[10.0**-i for i in range(len(milestones) + 1)],
            milestones=[int(max_iter * m) for m in milestones],
            num_updates=max_iter,
        ),
        warmup_length=min(1.0, warmup_iters / max_iter),
        warmup_factor=warmup_factor,
    )
