"""AlignDet box-domain pre-training (Li et al., "AlignDet: Aligning Pre-training and Fine-tuning
in Object Detection", ICCV 2023) as a detectron2 meta-architecture.

The neck and heads of a two-stage detector are pre-trained on unlabeled images, on top of the
frozen ImageNet trunk, with selective-search proposals as pseudo-boxes:

- box-domain contrastive loss: RoI features of the proposals in view 1 (online detector ->
  projector -> predictor) against the same proposals in view 2 (momentum detector -> momentum
  projector), InfoNCE with every other box of the batch as a negative; symmetrised;
- the detector's own box losses with the proposals as one-class ground truth: RPN objectness
  (proposals are the positives) and box regression of the RPN and the RoI head(s) (L1 or GIoU,
  as the detector's box predictor is configured).

The online detector's parts are stored exactly where :class:`GeneralizedRCNN` keeps them
(``backbone``, ``proposal_generator``, ``roi_heads``), so a normal detector loads them from a
pre-training checkpoint (:mod:`freezedet.checkpoint.aligndet`); the momentum copy lives under
``momentum.*``, the projection heads under ``projector.*`` / ``predictor.*``. The momentum copy
is updated by :class:`freezedet.engine.ema.MomentumUpdateHook`; it is part of the state dict, so
checkpoints save it and ``--resume`` restores it.
"""

import copy
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import nn

from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN
from detectron2.structures import ImageList

__all__ = ["AlignDetPretrainer", "BoxProjector", "box_infonce"]


class BoxProjector(nn.Sequential):
    """Linear -> LayerNorm -> ReLU -> Linear: the projection / prediction MLP of BYOL-style
    methods. LayerNorm instead of BatchNorm, so images with very few boxes are fine."""

    def __init__(self, *, in_dim: int, hidden_dim: int, out_dim: int):
        """
        Args:
            in_dim (int): input feature size.
            hidden_dim (int): hidden layer size.
            out_dim (int): output size.
        """
        super().__init__(
            nn.Linear(in_dim, hidden_dim),
            nn.LayerNorm(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
        )


def box_infonce(query: torch.Tensor, key: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE over boxes: row ``i`` of ``query`` and of ``key`` are the same proposal seen in two
    views (the positive); every other row of ``key`` is a negative.

    Args:
        query, key: (N, D) L2-normalised embeddings, N >= 1.
        temperature: softmax temperature.
    """
    assert query.shape == key.shape, f"{tuple(query.shape)} != {tuple(key.shape)}"
    logits = query @ key.t() / temperature
    return F.cross_entropy(logits, torch.arange(len(query), device=query.device))


@META_ARCH_REGISTRY.register()
class AlignDetPretrainer(GeneralizedRCNN):
    """Box-domain pre-training of a two-stage detector (Faster / Cascade R-CNN, any neck).

    Training input: dicts from :class:`freezedet.data.two_view.TwoViewProposalMapper`. In eval
    mode it is the online detector (``GeneralizedRCNN.inference``).
    """

    @configurable
    def __init__(
        self,
        *,
        detector: GeneralizedRCNN,
        temperature: float = 0.5,
        projector_hidden_dim: int = 1024,
        projector_dim: int = 256,
        predictor_hidden_dim: int = 1024,
        symmetric: bool = True,
        contrast_weight: float = 1.0,
        roi_cls_weight: float = 0.0,
    ):
        """
        Args:
            detector (GeneralizedRCNN): the online detector (its trunk frozen as configured);
                its RoI heads should have one class and a class-agnostic box regressor.
            temperature (float): InfoNCE temperature (AlignDet: 0.5).
            projector_hidden_dim (int): hidden size of the projection MLPs.
            projector_dim (int): size of the L2-normalised box embeddings.
            predictor_hidden_dim (int): hidden size of the online predictor MLP (BYOL); 0: no
                predictor, the online projection is compared directly.
            symmetric (bool): also run the online detector on view 2 (its detection losses and
                its boxes contrasted with momentum view-1 boxes); False halves the cost.
            contrast_weight (float): weight of the contrastive loss.
            roi_cls_weight (float): weight of the RoI heads' proposal-vs-background
                classification loss(es); 0 (default) drops them, as selective-search proposals
                are no reliable objectness labels for RoIs (RPN objectness is kept).
        """
        super().__init__(
            backbone=detector.backbone,
            proposal_generator=detector.proposal_generator,
            roi_heads=detector.roi_heads,
            pixel_mean=detector.pixel_mean.flatten().tolist(),
            pixel_std=detector.pixel_std.flatten().tolist(),
            input_format=detector.input_format,
        )
        assert temperature > 0, f"temperature must be positive, got {temperature}"
        heads = self._box_heads(self.roi_heads)
        in_dim = heads[0].output_shape.channels
        self.projector = BoxProjector(
            in_dim=in_dim, hidden_dim=projector_hidden_dim, out_dim=projector_dim
        )
        self.predictor = (
            BoxProjector(
                in_dim=projector_dim, hidden_dim=predictor_hidden_dim, out_dim=projector_dim
            )
            if predictor_hidden_dim > 0
            else None
        )
        self.momentum = nn.ModuleDict(
            {k: copy.deepcopy(m) for k, m in self.momentum_pairs_online().items()}
        )
        for p in self.momentum.parameters():
            p.requires_grad_(False)
        self.temperature = temperature
        self.symmetric = symmetric
        self.contrast_weight = contrast_weight
        self.roi_cls_weight = roi_cls_weight

    @classmethod
    def from_config(cls, cfg):
        return {"detector": GeneralizedRCNN(cfg)}

    @staticmethod
    def _box_heads(roi_heads) -> List[nn.Module]:
        # Cascade R-CNN keeps one box head per stage in a ModuleList
        head = roi_heads.box_head
        return list(head) if isinstance(head, nn.ModuleList) else [head]

    def momentum_pairs_online(self) -> Dict[str, nn.Module]:
        """The online modules the momentum copy mirrors, by name (keys of ``self.momentum``)."""
        return {"backbone": self.backbone, "roi_heads": self.roi_heads, "projector": self.projector}

    def forward(self, batched_inputs: List[dict]):
        if not self.training:
            return self.inference(batched_inputs)
        views = [[x["views"][v] for x in batched_inputs] for v in range(2)]
        # online view v is contrasted with momentum view 1 - v
        online_views = (0, 1) if self.symmetric else (0,)
        losses, online = {}, []
        for v in online_views:
            images = self.preprocess_image(views[v])
            targets = [x["instances"].to(self.device) for x in views[v]]
            features = self.backbone(images.tensor)
            for k, val in self._detection_losses(images, features, targets).items():
                losses[k] = losses.get(k, 0.0) + val / len(online_views)
            online.append(self._embed(self.roi_heads, features, targets, online=True))
        with torch.no_grad():
            momentum = [self._embed_momentum(views[1 - v]) for v in online_views]
        losses["loss_contrast"] = self.contrast_weight * self._contrast(online, momentum)
        return losses

    def _detection_losses(self, images: ImageList, features, targets) -> Dict[str, torch.Tensor]:
        proposals, rpn_losses = self.proposal_generator(images, features, targets)
        _, roi_losses = self.roi_heads(images, features, proposals, targets)
        for k in [k for k in roi_losses if k.startswith("loss_cls")]:
            if self.roi_cls_weight == 0:
                del roi_losses[k]
            else:
                roi_losses[k] = roi_losses[k] * self.roi_cls_weight
        return {**rpn_losses, **roi_losses}

    def _embed(self, roi_heads, features, targets, *, online: bool) -> List[torch.Tensor]:
        """Per box-head stage: (N, D) normalised embeddings of all target boxes of the batch."""
        pooled = roi_heads.box_pooler(
            [features[f] for f in roi_heads.box_in_features], [t.gt_boxes for t in targets]
        )
        projector = self.projector if online else self.momentum["projector"]
        out = []
        for head in self._box_heads(roi_heads):
            z = projector(head(pooled))
            if online and self.predictor is not None:
                z = self.predictor(z)
            out.append(F.normalize(z, dim=1))
        return out

    def _embed_momentum(self, inputs: List[dict]) -> List[torch.Tensor]:
        images = self.preprocess_image(inputs)
        targets = [x["instances"].to(self.device) for x in inputs]
        features = self.momentum["backbone"](images.tensor)
        return self._embed(self.momentum["roi_heads"], features, targets, online=False)

    def _contrast(self, online: List[List[torch.Tensor]], momentum: List[List[torch.Tensor]]):
        terms = [
            box_infonce(q, k, self.temperature)
            for qs, ks in zip(online, momentum)
            for q, k in zip(qs, ks)
            if len(q)
        ]
        if not terms:  # no proposal survived in both views anywhere in the batch
            return sum(p.sum() * 0.0 for p in self.projector.parameters())
        return sum(terms) / len(terms)
