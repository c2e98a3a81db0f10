# Long-tail stage 2: start from stage 1's final weights (its output dir, derived from its file
# name), switch every Cascade stage's classifier loss to the class-balanced softmax CE (Cui et
# al., effective number of samples, beta 0.999; n_c counts annotated instances, Cui et al.'s
# samples), 6 epochs at 1/10 of stage 1's LR. Two explicit choices, each one override away:
#
# - What trains. `train.trainable` = the box classifiers only (CLASSIFIER_PATTERNS: every
#   stage's cls_score; the rest of the model, BN statistics included, stays as stage 1 left it),
#   the decoupled classifier re-training of Kang et al. (ICLR 2020) that two-stage long-tail
#   recipes follow. All non-trunk parameters: `train.trainable=None` (the frozen trunk stays
#   frozen either way).
# - Sampling. Repeat-factor sampling off (`repeat_thresh=0.0`: every repeat factor is 1, i.e.
#   uniform over images): the class-balanced loss already re-weights rare classes, RFS on top
#   would re-balance a second time. On: `dataloader.train.sampler.repeat_factors.
#   repeat_thresh=0.001` (stage 1's).
#
# Which of these "Proper Reuse" used in its stage 2 is not stated in the material available here
# (the write-up only says stage 2 uses a class-balanced loss; the TF projects ship no LVIS
# config): both defaults are unverified against the paper.
import os

from freezedet.engine import default_output_dir
from freezedet.modeling.trainable import CLASSIFIER_PATTERNS

from ..common.long_tail import use_class_balanced_loss
from ..common.lvis_recipe import lvis_recipe
from ..common.schedule import DEFAULT_MILESTONES
from .cascade_mask_rcnn_nasfpn_r50_frozen_copypaste_72ep import __file__ as _stage1
from .cascade_mask_rcnn_nasfpn_r50_frozen_copypaste_72ep import (
    dataloader,
    model,
    optimizer,
    train,
)

train.init_checkpoint = os.path.join(default_output_dir(_stage1), "model_final.pth")
train.trainable = list(CLASSIFIER_PATTERNS)
dataloader.train.sampler.repeat_factors.repeat_thresh = 0.0
use_class_balanced_loss(model, loss="softmax", beta=0.999)
# no reference schedule for stage 2: freezedet's default milestones over its 6 epochs
lr_multiplier = lvis_recipe(
    model, train, optimizer, epochs=6, lr=0.016, warmup_iters=100, milestones=DEFAULT_MILESTONES
)
