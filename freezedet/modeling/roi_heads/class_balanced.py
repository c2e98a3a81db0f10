"""Class-balanced classification losses for the box predictor, for long-tailed data (LVIS).

:class:`ClassBalancedFastRCNNOutputLayers` is a :class:`FastRCNNOutputLayers` whose
classification loss is one of

- ``"softmax"``: cross-entropy over the K classes + background (detectron2's loss);
- ``"sigmoid"``: a binary cross-entropy per foreground class (background = all zeros);
- ``"federated"``: the federated loss (Zhou et al., "Probabilistic two-stage detection",
  2021, as used in Detic; named after LVIS's federated annotation): the sigmoid loss restricted
  to the classes present in the batch plus classes drawn without replacement with probability
  proportional to ``image_count ** freq_power``, ``num_fed_classes`` in all. A rare class is thus
  rarely pushed down as a negative on images that were never checked for it.

and optionally weights each RoI by the class-balanced term of its ground-truth class (Cui et
al., "Class-Balanced Loss Based on Effective Number of Samples", CVPR 2019):
``w_c = (1 - beta) / (1 - beta ** n_c)`` normalised to mean 1 over the classes, background RoIs
weight 1. ``n_c`` is the number of training *samples* of class c, as Cui et al. define it:
annotated instances for detection (``class_balance_count="instances"``, the default;
``"images"`` counts images per class instead, LVIS's frequency measure). The federated loss
samples negatives by image counts, as Zhou et al. / Detic do.

The classifier keeps K + 1 outputs in every mode, so checkpoints move between modes (the
two-stage long-tail recipe: softmax stage 1, class-balanced stage 2). With a sigmoid loss the
background logit is unused; inference returns per-class sigmoid probabilities with an appended
background column (the probability of no class, ``prod(1 - p)``), the layout detectron2's
``fast_rcnn_inference`` and Cascade R-CNN's score averaging expect. This file implements the
losses itself (detectron2 v0.6 has none; main's ``use_fed_loss`` is not used), so it behaves the
same on both.
"""

import logging
from typing import Callable, List, Optional, Sequence

import torch
import torch.nn.functional as F

from detectron2.layers import ShapeSpec, cat
from detectron2.modeling.roi_heads import FastRCNNOutputLayers
from detectron2.modeling.roi_heads.fast_rcnn import _log_classification_stats

__all__ = [
    "ClassBalancedFastRCNNOutputLayers",
    "effective_number_weights",
    "federated_classes",
]

logger = logging.getLogger(__name__)

LOSSES = ("softmax", "sigmoid", "federated")
COUNTS = ("instances", "images")


def effective_number_weights(counts: torch.Tensor, beta: float) -> torch.Tensor:
    """Cui et al.'s ``(1 - beta) / (1 - beta ** n)``, normalised to mean 1. Classes with
    ``n = 0`` get the weight of ``n = 1``."""
    assert 0.0 <= beta < 1.0, f"beta must be in [0, 1), got {beta}"
    n = counts.double().clamp(min=1)
    w = (1.0 - beta) / (1.0 - beta**n)
    return (w * len(w) / w.sum()).float()


def federated_classes(
    gt_classes: torch.Tensor, class_weights: torch.Tensor, num_fed_classes: int
) -> torch.Tensor:
    """A bool mask over the K classes: those among ``gt_classes`` (background ``K`` ignored),
    plus classes sampled without replacement with probability ∝ ``class_weights`` until
    ``num_fed_classes`` are chosen (all present classes are kept if there are more)."""
    k = len(class_weights)
    chosen = torch.zeros(k, dtype=torch.bool, device=gt_classes.device)
    chosen[gt_classes[gt_classes < k]] = True
    more = min(num_fed_classes, k) - int(chosen.sum())
    if more > 0:
        prob = class_weights.float().clone().to(gt_classes.device)
        prob[chosen] = 0
        avail = int((prob > 0).sum())
        if avail:
            chosen[torch.multinomial(prob, min(more, avail), replacement=False)] = True
    return chosen


class ClassBalancedFastRCNNOutputLayers(FastRCNNOutputLayers):
    """:class:`FastRCNNOutputLayers` with the classification losses of the module docstring.

    Works wherever detectron2 uses a box predictor: ``StandardROIHeads.box_predictor`` and each
    entry of ``CascadeROIHeads.box_predictors``.
    """

    def __init__(
        self,
        input_shape: ShapeSpec,
        *,
        loss: str = "softmax",
        num_fed_classes: int = 50,
        fed_freq_power: float = 0.5,
        class_balance_beta: float = 0.0,
        class_balance_count: str = "instances",
        class_image_counts: Optional[Sequence[int]] = None,
        class_instance_counts: Optional[Sequence[int]] = None,
        class_counts: Optional[Callable[[str], Sequence[int]]] = None,
        **kwargs,
    ):
        """
        Args:
            input_shape (ShapeSpec): shape of the box head's output.
            loss (str): "softmax", "sigmoid" or "federated".
            num_fed_classes (int): classes the federated loss is computed over per batch.
            fed_freq_power (float): negatives are sampled ∝ ``image_count ** fed_freq_power``.
            class_balance_beta (float): beta of the effective-number weights; 0 turns them off.
            class_balance_count (str): what ``n_c`` counts: "instances" (Cui et al.'s samples)
                or "images".
            class_image_counts (list[int] or None): images per class (length K), for
                "federated" (and ``class_balance_count="images"``).
            class_instance_counts (list[int] or None): annotated instances per class (length
                K), for ``class_balance_beta > 0``.
            class_counts (callable or None): ``class_counts(unit)`` returns the training data's
                per-class counts of ``unit`` ("images" / "instances"), for the counts not given
                above, e.g. :class:`freezedet.data.lvis.DatasetClassCounts` set in the config
                (as detectron2's LVIS recipe passes ``get_fed_loss_cls_weights``); called on the
                first training step that needs them, once the training data is registered, and
                the result is stored in the checkpoint.
            kwargs: arguments of :class:`FastRCNNOutputLayers` (``box2box_transform``,
                ``num_classes``, ...).
        """
        super().__init__(input_shape, **kwargs)
        assert loss in LOSSES, f"loss must be one of {LOSSES}, got {loss!r}"
        assert num_fed_classes >= 1, f"num_fed_classes must be >= 1, got {num_fed_classes}"
        assert 0.0 <= class_balance_beta < 1.0, f"beta must be in [0, 1), got {class_balance_beta}"
        assert class_balance_count in COUNTS, f"class_balance_count must be one of {COUNTS}"
        self.loss = loss
        self.num_fed_classes = num_fed_classes
        self.fed_freq_power = fed_freq_power
        self.class_balance_beta = class_balance_beta
        self.class_balance_count = class_balance_count
        self.class_counts = class_counts
        needed = self._needed_counts()
        given = {"images": class_image_counts, "instances": class_instance_counts}
        missing = [u for u in needed if given[u] is None]
        assert not missing or class_counts is not None, (
            f"loss={loss!r}, class_balance_beta={class_balance_beta} need class {missing} "
            "counts: give class_image_counts / class_instance_counts or class_counts (e.g. "
            "freezedet.data.lvis.DatasetClassCounts of the training datasets)"
        )
        # all zeros = not known yet; saved with the model so evaluation needs no dataset
        for unit, counts in given.items():
            self.register_buffer(f"class_{unit[:-1]}_counts", self._as_counts(counts))

    def _as_counts(self, counts: Optional[Sequence[int]]) -> torch.Tensor:
        k = self.num_classes
        if counts is None:
            return torch.zeros(k)
        counts = torch.as_tensor(list(counts), dtype=torch.float32)
        assert counts.shape == (k,), f"{len(counts)} class counts for {k} classes"
        assert (counts >= 0).all() and counts.sum() > 0, "class counts must be >= 0, not all 0"
        return counts

    def _needed_counts(self) -> List[str]:
        needed = ["images"] if self.loss == "federated" else []
        if self.class_balance_beta > 0 and self.class_balance_count not in needed:
            needed.append(self.class_balance_count)
        return needed

    def _counts(self, unit: str = "images") -> torch.Tensor:
        """Per-class counts of ``unit`` ("images" / "instances"), from ``class_counts`` the
        first time they are needed."""
        buf = getattr(self, f"class_{unit[:-1]}_counts")
        if buf.sum() == 0:
            counts = self.class_counts(unit)
            assert len(counts) == self.num_classes, (
                f"{self.class_counts} counts {len(counts)} classes, the predictor "
                f"{self.num_classes}"
            )
            buf.copy_(torch.as_tensor(counts, dtype=torch.float32))
            logger.info(f"class {unit} counts read from {self.class_counts}")
        return buf

    def _roi_weights(self, gt_classes: torch.Tensor) -> Optional[torch.Tensor]:
        if self.class_balance_beta == 0:
            return None
        w = effective_number_weights(
            self._counts(self.class_balance_count), self.class_balance_beta
        )
        w = torch.cat([w.to(gt_classes.device), w.new_ones(1).to(gt_classes.device)])
        return w[gt_classes]

    def classification_loss(self, scores: torch.Tensor, gt_classes: torch.Tensor):
        """The configured loss of (N, K + 1) logits against ``gt_classes`` in [0, K], averaged
        over the N RoIs (0 for N = 0)."""
        n, k = len(gt_classes), self.num_classes
        if n == 0:
            return scores.sum() * 0.0
        weights = self._roi_weights(gt_classes)
        if self.loss == "softmax":
            per_roi = F.cross_entropy(scores, gt_classes, reduction="none")
        else:
            target = F.one_hot(gt_classes, k + 1)[:, :k].to(scores.dtype)
            per_elem = F.binary_cross_entropy_with_logits(scores[:, :k], target, reduction="none")
            if self.loss == "federated":
                fed_w = self._counts("images").to(scores.device) ** self.fed_freq_power
                per_elem = per_elem * federated_classes(gt_classes, fed_w, self.num_fed_classes)
            per_roi = per_elem.sum(dim=1)
        if weights is not None:
            per_roi = per_roi * weights
        return per_roi.sum() / n

    def losses(self, predictions, proposals):
        """detectron2's losses with :meth:`classification_loss` as ``loss_cls``."""
        scores, proposal_deltas = predictions
        gt_classes = (
            cat([p.gt_classes for p in proposals], dim=0)
            if len(proposals)
            else torch.empty(0, dtype=torch.long, device=scores.device)
        )
        _log_classification_stats(scores, gt_classes)
        if len(proposals):
            proposal_boxes = cat([p.proposal_boxes.tensor for p in proposals], dim=0)
            # proposals without a match (no "gt_boxes") are negatives: any placeholder box works
            gt_boxes = cat(
                [(p.gt_boxes if p.has("gt_boxes") else p.proposal_boxes).tensor for p in proposals]
            )
        else:
            proposal_boxes = gt_boxes = torch.empty((0, 4), device=proposal_deltas.device)
        losses = {
            "loss_cls": self.classification_loss(scores, gt_classes),
            "loss_box_reg": self.box_reg_loss(
                proposal_boxes, gt_boxes, proposal_deltas, gt_classes
            ),
        }
        return {k: v * self.loss_weight.get(k, 1.0) for k, v in losses.items()}

    def predict_probs(self, predictions, proposals) -> List[torch.Tensor]:
        """Per image (R, K + 1) scores: softmax, or sigmoid with a background column."""
        if self.loss == "softmax":
            return super().predict_probs(predictions, proposals)
        scores, _ = predictions
        probs = scores[:, : self.num_classes].sigmoid()
        probs = torch.cat([probs, (1 - probs).prod(dim=1, keepdim=True)], dim=1)
        return probs.split([len(p) for p in proposals], dim=0)
