# Long-tail stage 2: start from stage 1's final weights (its output dir, derived from its file
# name), switch every Cascade stage's classifier loss to the class-balanced softmax CE (effective
# number of samples, beta 0.999), 6 epochs at 1/10 of the LR. Nothing new is frozen.
import os

from freezedet.engine import default_output_dir

from ..common.long_tail import use_class_balanced_loss
from ..common.lvis_recipe import lvis_recipe
from .cascade_mask_rcnn_nasfpn_r50_frozen_copypaste_72ep import __file__ as _stage1
from .cascade_mask_rcnn_nasfpn_r50_frozen_copypaste_72ep import (
    dataloader,
    model,
    optimizer,
    train,
)

train.init_checkpoint = os.path.join(default_output_dir(_stage1), "model_final.pth")
use_class_balanced_loss(model, loss="softmax", beta=0.999)
lr_multiplier = lvis_recipe(model, train, optimizer, epochs=6, lr=0.008, warmup_iters=100)
