# Parallel adapters in the last two stages only: the early, high-resolution layers stay
# graph-free, ~10x less kept activation memory than adapters everywhere (see adapters.py).
from ..common.adapters import use_adapters
from .cascade_rcnn_nasfpn import dataloader, lr_multiplier, model, optimizer, train

use_adapters(model, kind="parallel", stages=[-2, -1])
