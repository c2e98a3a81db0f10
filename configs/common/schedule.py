from fvcore.common.param_scheduler import MultiStepParamScheduler

from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler


def step_schedule(max_iter, warmup_iters=500):
    """The papers' step schedule: x0.1 at 8/9 and x0.01 at 17/18 of training, linear warmup.

    Called while the config is written (not a lazy call), so the config stays plain data.
    """
    return L(WarmupParamScheduler)(
        scheduler=L(MultiStepParamScheduler)(
            values=[1.0, 0.1, 0.01],
            milestones=[int(max_iter * 8 / 9), int(max_iter * 17 / 18)],
            num_updates=max_iter,
        ),
        warmup_length=min(1.0, warmup_iters / max_iter),
        warmup_factor=0.067,
    )
