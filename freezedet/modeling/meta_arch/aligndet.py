"""AlignDet box-domain pre-training (Li et al., "AlignDet: Aligning Pre-training and Fine-tuning
in Object Detection", ICCV 2023) as a detectron2 meta-architecture.

The neck and heads of a two-stage detector are pre-trained on unlabeled images, on top of the
frozen ImageNet trunk, with selective-search proposals as pseudo-boxes. As the official code
builds it (``liming-ai/AlignDet``: ``AlignDet/models/detectors/selfsup_detector.py``,
``selfsup_mask_rcnn.py``, ``roi_heads/bbox_heads/convfc_bbox_head.py``,
``losses/contrastive_loss.py``, ``configs/_base_/models/selfsup_mask_rcnn_r50_fpn.py``):

- **Asymmetric views.** The online detector sees view 1; the momentum (EMA) detector sees view 2,
  entirely without gradients, with its own backbone, RPN and RoI heads.
- **The detector's own RoIs.** Each branch runs its RPN; its proposals plus the pseudo-boxes
  themselves (``add_gt_as_proposals``) are matched to the pseudo-boxes, and every RoI with
  IoU >= the RoI head's foreground threshold (0.5) is a sample labelled with the instance id of
  its pseudo-box (ids unique over the batch); at most ``rois_per_image`` are kept per image
  (official: 4096, positives only). Cascade stages re-match the previous stage's refined RoIs at
  their own thresholds, as mmdet's cascade heads do.
- **Box-domain contrast** (:func:`box_contrast`): for every instance, each online RoI of it is a
  query and each momentum RoI of the same instance a positive key (several positives); the
  negatives are the RoIs of all other instances from *both* branches, detached. InfoNCE with
  temperature 0.5 on the projector's L2-normalised embeddings (Linear -> ReLU -> Linear), averaged
  over query-key pairs per instance, then over instances.
- **Box regression** of each RoI head towards the matched pseudo-box, averaged over the sampled
  (positive) RoIs only; the RPN's objectness and box losses with the pseudo-boxes as one-class
  ground truth, as the detector's RPN is configured (the official config samples 4096 anchors per
  image, positives first; here the detector's own RPN sampling is used).

Deviations used in earlier freezedet versions are named options, all off by default:
``contrast_boxes="proposals"`` (contrast only the proposal boxes, one positive per proposal),
``negatives="momentum"`` (negatives from momentum keys only), ``predictor_hidden_dim > 0`` (a
BYOL-style predictor on the online side), ``symmetric=True`` (also online view 2 vs momentum
view 1), ``projector_norm="LN"``.

The online detector's parts are stored exactly where :class:`GeneralizedRCNN` keeps them
(``backbone``, ``proposal_generator``, ``roi_heads``), so a normal detector loads them from a
pre-training checkpoint (:mod:`freezedet.checkpoint.aligndet`); the momentum copy lives under
``momentum.*``, the projection heads under ``projector.*`` / ``predictor.*``. The momentum copy
is updated by :class:`freezedet.engine.ema.MomentumUpdateHook`; it is part of the state dict, so
checkpoints save it and ``--resume`` restores it.
"""

import copy
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from detectron2.config import configurable
from detectron2.layers import cat
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN
from detectron2.structures import Boxes, Instances, pairwise_iou
from detectron2.utils.events import get_event_storage

__all__ = [
    "AlignDetPretrainer",
    "BoxProjector",
    "box_contrast",
    "box_contrast_chance",
    "box_contrast_top1",
    "match_rois_to_proposals",
    "CASCADE_STAGE_WEIGHTS",
]

# mmdet's Cascade / HTC stage loss weights, which AlignDet's cascade pre-training (HTC) uses
CASCADE_STAGE_WEIGHTS = (1.0, 0.5, 0.25)
_CONTRAST_BOXES = ("rois", "proposals")
_NEGATIVES = ("both", "momentum")


class BoxProjector(nn.Sequential):
    """Linear -> [LayerNorm] -> ReLU -> Linear: AlignDet's projector (MoCo v2's neck,
    fc-relu-fc), optionally with a LayerNorm (``norm="LN"``)."""

    def __init__(self, *, in_dim: int, hidden_dim: int, out_dim: int, norm: str = ""):
        """
        Args:
            in_dim (int): input feature size.
            hidden_dim (int): hidden layer size.
            out_dim (int): output size.
            norm (str): "" (AlignDet) or "LN" (a LayerNorm after the first layer).
        """
        assert norm in ("", "LN"), f"norm={norm!r}: '' or 'LN'"
        layers = [nn.Linear(in_dim, hidden_dim)]
        if norm == "LN":
            layers.append(nn.LayerNorm(hidden_dim))
        super().__init__(*layers, nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim))


def box_contrast(
    query: torch.Tensor,
    query_ids: torch.Tensor,
    key: torch.Tensor,
    key_ids: torch.Tensor,
    temperature: float,
    *,
    negatives: str = "both",
) -> torch.Tensor:
    """AlignDet's box-domain contrastive loss over RoIs labelled with instance ids.

    For an instance ``u`` with online queries ``Q_u`` and momentum keys ``K_u`` (every key of
    ``u`` is a positive of every query of ``u``), the loss is the mean over the
    ``|Q_u| * |K_u|`` pairs ``(q, k)`` of ``-log(exp(q.k / t) / (exp(q.k / t) + sum_n exp(q.n /
    t)))``, with negatives ``n``: the queries and keys of all other instances (``"both"``, the
    official code) or the keys only (``"momentum"``); negatives carry no gradient. An instance
    without any key uses its queries as keys (gradient included), as the official code does. The result
    is the mean over the instances of ``query_ids``.

    Args:
        query, key: (N, D) and (M, D) L2-normalised embeddings (``key`` from the momentum
            branch, no gradient expected).
        query_ids, key_ids: (N,) and (M,) int64 instance ids.
        temperature (float): softmax temperature.
        negatives (str): "both" or "momentum".

    Returns:
        a scalar; 0 (with a graph) when ``query`` is empty.
    """
    assert negatives in _NEGATIVES, f"negatives={negatives!r}: one of {_NEGATIVES}"
    assert query.shape[0] == query_ids.shape[0], f"{query.shape[0]} != {query_ids.shape[0]}"
    assert key.shape[0] == key_ids.shape[0], f"{key.shape[0]} != {key_ids.shape[0]}"
    if len(query) == 0:
        return query.sum() * 0.0
    s_qk = query @ key.detach().t() / temperature  # (N, M)
    s_qq = query @ query.detach().t() / temperature  # (N, N)
    same_k = query_ids[:, None] == key_ids[None, :]
    same_q = query_ids[:, None] == query_ids[None, :]
    # negative logits of each query; -1e9 instead of -inf keeps empty rows' gradients finite
    neg = s_qk.masked_fill(same_k, -1e9)
    if negatives == "both":
        neg = torch.cat([neg, s_qq.masked_fill(same_q, -1e9)], dim=1)
    lse_neg = torch.logsumexp(neg, dim=1, keepdim=True)
    has_key = same_k.any(dim=1, keepdim=True)  # the instance of query i has momentum keys
    positives = torch.cat([same_k & has_key, same_q & ~has_key], dim=1)
    # the official fallback key is the query itself, gradient included
    s_pos = torch.cat([s_qk, query @ query.t() / temperature], dim=1)
    pair_loss = F.softplus(lse_neg - s_pos) * positives
    uniq, inverse = torch.unique(query_ids, return_inverse=True)
    per_id = torch.zeros(len(uniq), dtype=pair_loss.dtype, device=pair_loss.device)
    pairs = torch.zeros_like(per_id)
    per_id = per_id.index_add(0, inverse, pair_loss.sum(dim=1))
    pairs = pairs.index_add(0, inverse, positives.sum(dim=1).to(pairs.dtype))
    return (per_id / pairs).mean()


def box_contrast_chance(
    query_ids: torch.Tensor, key_ids: torch.Tensor, *, negatives: str = "both"
) -> float:
    """The value of :func:`box_contrast` for uninformative embeddings (all similarities
    equal): per pair ``log(1 + number of negatives of the query)``, averaged as the loss is.
    It grows with the number of RoIs, so a loss is only comparable to its own chance level."""
    assert negatives in _NEGATIVES, f"negatives={negatives!r}: one of {_NEGATIVES}"
    if len(query_ids) == 0:
        return float("nan")
    n_neg = (query_ids[:, None] != key_ids[None, :]).sum(1)
    if negatives == "both":
        n_neg = n_neg + (query_ids[:, None] != query_ids[None, :]).sum(1)
    per_query = torch.log1p(n_neg.double())
    uniq, inverse = torch.unique(query_ids, return_inverse=True)
    total = torch.zeros(len(uniq), dtype=torch.float64).index_add(0, inverse, per_query)
    count = torch.zeros(len(uniq), dtype=torch.float64).index_add(
        0, inverse, torch.ones_like(per_query)
    )
    return float((total / count).mean())


def box_contrast_top1(
    query: torch.Tensor,
    query_ids: torch.Tensor,
    key: torch.Tensor,
    key_ids: torch.Tensor,
    *,
    negatives: str = "both",
) -> Tuple[float, float]:
    """How often the box embeddings rank a query's own box in the other view first: the fraction
    of queries (with at least one key) whose most similar candidate among the keys and, with
    ``negatives="both"``, the other instances' queries is a key of their own instance. Unlike
    :func:`box_contrast`, it does not depend on the temperature.

    Returns:
        (top1, chance): the fraction, and its expectation for uninformative embeddings (the mean
        over those queries of positives / candidates); (nan, nan) without such queries.
    """
    assert negatives in _NEGATIVES, f"negatives={negatives!r}: one of {_NEGATIVES}"
    same_k = query_ids[:, None] == key_ids[None, :]
    has_key = same_k.any(dim=1)
    if not has_key.any():
        return float("nan"), float("nan")
    sim = query @ key.t()
    candidates = torch.ones_like(same_k)
    if negatives == "both":
        sim = torch.cat([sim, query @ query.t()], dim=1)
        candidates = torch.cat([candidates, query_ids[:, None] != query_ids[None, :]], dim=1)
        same_k = torch.cat([same_k, torch.zeros_like(candidates[:, len(key_ids) :])], dim=1)
    best = sim.masked_fill(~candidates, float("-inf")).argmax(dim=1)
    hit = same_k.gather(1, best[:, None]).squeeze(1)[has_key]
    chance = (same_k.sum(1).double() / candidates.sum(1).double())[has_key]
    return float(hit.double().mean()), float(chance.mean())


def match_rois_to_proposals(
    rois: Boxes,
    proposals: Boxes,
    proposal_ids: torch.Tensor,
    *,
    image_size: Tuple[int, int],
    iou_threshold: float,
    max_rois: int,
) -> Instances:
    """AlignDet's RoI sampling for one image: the RoIs (plus the proposals themselves, as
    mmdet's ``add_gt_as_proposals``) whose best IoU with a proposal is >= ``iou_threshold``,
    at most ``max_rois`` of them chosen at random.

    Args:
        rois (Boxes): the detector's RoIs of the image (RPN proposals, or a cascade stage's
            refined boxes); used without gradient.
        proposals (Boxes): the image's pseudo-boxes (selective-search proposals).
        proposal_ids (Tensor): (P,) instance id of each pseudo-box.
        image_size (tuple[int, int]): (h, w) of the image.
        iou_threshold (float): the RoI head's foreground IoU threshold.
        max_rois (int): at most this many samples.

    Returns:
        Instances with ``proposal_boxes`` (the sampled boxes), ``gt_boxes`` (their matched
        pseudo-box), ``instance_ids`` and ``is_proposal`` (True for the appended pseudo-boxes).
    """
    assert len(proposals) == len(proposal_ids), f"{len(proposals)} != {len(proposal_ids)}"
    boxes = Boxes(cat([rois.tensor.detach(), proposals.tensor]))
    is_proposal = torch.arange(len(boxes), device=boxes.device) >= len(rois)
    if len(proposals) == 0:
        keep = matched = torch.zeros(0, dtype=torch.long, device=boxes.device)
    else:
        iou, matched = pairwise_iou(proposals, boxes).max(dim=0)
        keep = torch.nonzero(iou >= iou_threshold).flatten()
        if len(keep) > max_rois:
            keep = keep[torch.randperm(len(keep), device=keep.device)[:max_rois]]
        matched = matched[keep]
    out = Instances(image_size)
    out.proposal_boxes = boxes[keep]
    out.gt_boxes = proposals[matched]
    out.instance_ids = proposal_ids[matched]
    out.is_proposal = is_proposal[keep]
    return out


@META_ARCH_REGISTRY.register()
class AlignDetPretrainer(GeneralizedRCNN):
    """Box-domain pre-training of a two-stage detector (Faster / Cascade R-CNN, any neck).

    Training input: dicts from :class:`freezedet.data.two_view.TwoViewProposalMapper`. In eval
    mode it is the online detector (``GeneralizedRCNN.inference``). yacs:
    ``MODEL.META_ARCHITECTURE: "AlignDetPretrainer"`` with ``MODEL.FREEZEDET.ALIGNDET.*``, trained
    by :class:`freezedet.engine.yacs.AlignDetTrainer`.
    """

    @configurable
    def __init__(
        self,
        *,
        detector: GeneralizedRCNN,
        temperature: float = 0.5,
        projector_hidden_dim: int = 1024,
        projector_dim: int = 256,
        projector_norm: str = "",
        predictor_hidden_dim: int = 0,
        symmetric: bool = False,
        contrast_weight: float = 1.0,
        rois_per_image: int = 4096,
        contrast_boxes: str = "rois",
        negatives: str = "both",
        stage_loss_weights: Optional[Sequence[float]] = None,
    ):
        """
        Args:
            detector (GeneralizedRCNN): the online detector (its trunk frozen as configured);
                its RoI heads should have one class and a class-agnostic box regressor.
            temperature (float): InfoNCE temperature (AlignDet: 0.5).
            projector_hidden_dim (int): hidden size of the projection MLP.
            projector_dim (int): size of the L2-normalised box embeddings (AlignDet: 256).
            projector_norm (str): "" (AlignDet: fc-relu-fc) or "LN".
            predictor_hidden_dim (int): 0 (AlignDet): no predictor; > 0: a BYOL-style predictor
                MLP on the online embeddings (a deviation).
            symmetric (bool): False (AlignDet): online view 1 against momentum view 2 only;
                True also runs online view 2 against momentum view 1 (a deviation, 2x cost).
            contrast_weight (float): weight of the contrastive loss.
            rois_per_image (int): at most this many matched RoIs per image and stage (AlignDet:
                4096).
            contrast_boxes (str): "rois" (AlignDet: the detector's matched RoIs) or
                "proposals" (a deviation: the pseudo-boxes only, one positive per proposal).
            negatives (str): "both" (AlignDet: other instances' RoIs of both branches) or
                "momentum" (a deviation: momentum keys only).
            stage_loss_weights (Sequence[float] or None): per RoI-head stage weights of the
                contrastive and regression losses; None: 1 for one stage,
                :data:`CASCADE_STAGE_WEIGHTS` for a 3-stage cascade.
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
        assert rois_per_image > 0, f"rois_per_image must be positive, got {rois_per_image}"
        assert contrast_boxes in _CONTRAST_BOXES, f"contrast_boxes={contrast_boxes!r}"
        assert negatives in _NEGATIVES, f"negatives={negatives!r}: one of {_NEGATIVES}"
        heads, _ = self._stages(self.roi_heads)
        if stage_loss_weights is None:
            stage_loss_weights = (1.0,) if len(heads) == 1 else CASCADE_STAGE_WEIGHTS
        assert len(stage_loss_weights) == len(
            heads
        ), f"{len(stage_loss_weights)} stage_loss_weights for {len(heads)} RoI-head stages"
        self.projector = BoxProjector(
            in_dim=heads[0].output_shape.channels,
            hidden_dim=projector_hidden_dim,
            out_dim=projector_dim,
            norm=projector_norm,
        )
        self.predictor = (
            BoxProjector(
                in_dim=projector_dim,
                hidden_dim=predictor_hidden_dim,
                out_dim=projector_dim,
                norm=projector_norm,
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
        self.rois_per_image = rois_per_image
        self.contrast_boxes = contrast_boxes
        self.negatives = negatives
        self.stage_loss_weights = [float(w) for w in stage_loss_weights]

    @classmethod
    def from_config(cls, cfg):
        """yacs: the online detector is ``MODEL.FREEZEDET.ALIGNDET.DETECTOR`` (a
        ``META_ARCH_REGISTRY`` name) built from the same cfg (one class, class-agnostic boxes:
        ``MODEL.ROI_HEADS.NUM_CLASSES: 1``, ``MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG: True``)."""
        a = cfg.MODEL.FREEZEDET.ALIGNDET
        if a.DETECTOR not in META_ARCH_REGISTRY or a.DETECTOR == cls.__name__:
            raise KeyError(
                f"MODEL.FREEZEDET.ALIGNDET.DETECTOR={a.DETECTOR!r} is not a detector of "
                f"META_ARCH_REGISTRY (e.g. 'GeneralizedRCNN')"
            )
        return {
            "detector": META_ARCH_REGISTRY.get(a.DETECTOR)(cfg),
            "temperature": a.TEMPERATURE,
            "projector_hidden_dim": a.PROJECTOR_HIDDEN_DIM,
            "projector_dim": a.PROJECTOR_DIM,
            "contrast_weight": a.CONTRAST_WEIGHT,
            "rois_per_image": a.ROIS_PER_IMAGE,
        }

    @staticmethod
    def _stages(roi_heads) -> Tuple[List[nn.Module], List[nn.Module]]:
        """(box heads, box predictors), one per stage (Cascade R-CNN keeps ModuleLists)."""
        head, pred = roi_heads.box_head, roi_heads.box_predictor
        if isinstance(head, nn.ModuleList):
            return list(head), list(pred)
        return [head], [pred]

    @staticmethod
    def _iou_thresholds(roi_heads) -> List[float]:
        matchers = getattr(roi_heads, "proposal_matchers", None) or [roi_heads.proposal_matcher]
        for m in matchers:
            assert len(m.thresholds) == 3, f"one foreground threshold expected: {m.thresholds}"
        return [float(m.thresholds[1]) for m in matchers]

    def momentum_pairs_online(self) -> Dict[str, nn.Module]:
        """The online modules the momentum copy mirrors, by name (keys of ``self.momentum``)."""
        return {
            "backbone": self.backbone,
            "proposal_generator": self.proposal_generator,
            "roi_heads": self.roi_heads,
            "projector": self.projector,
        }

    def forward(self, batched_inputs: List[dict]):
        if not self.training:
            return self.inference(batched_inputs)
        views = [[x["views"][v] for x in batched_inputs] for v in range(2)]
        ids = self._instance_ids(views)
        online_views = (0, 1) if self.symmetric else (0,)
        losses: Dict[str, torch.Tensor] = {}
        contrast, chance, rois, top1 = [], [], [], []
        for v in online_views:
            branch = self._branch(views[v], ids[v], online=True)
            with torch.no_grad():
                other = self._branch(views[1 - v], ids[1 - v], online=False)
            for k, val in branch["losses"].items():
                losses[k] = losses.get(k, 0.0) + val / len(online_views)
            for w, (q, qi), (k, ki) in zip(
                self.stage_loss_weights, branch["embeddings"], other["embeddings"]
            ):
                loss = box_contrast(q, qi, k, ki, self.temperature, negatives=self.negatives)
                contrast.append(w * loss / len(online_views))
                chance.append(w * box_contrast_chance(qi, ki, negatives=self.negatives))
                with torch.no_grad():
                    top1.append(box_contrast_top1(q, qi, k, ki, negatives=self.negatives))
                rois.append(len(qi) / len(batched_inputs))
        losses["loss_contrast"] = self.contrast_weight * sum(contrast)
        # the contrastive loss's level for uninformative embeddings, and the RoIs behind it
        storage = get_event_storage()
        storage.put_scalar("aligndet/contrast_chance", sum(chance) / len(online_views))
        storage.put_scalar("aligndet/rois_per_image", sum(rois) / len(rois))
        # the temperature-free view of the same question: is a box's own other view ranked first
        storage.put_scalar("aligndet/contrast_top1", sum(t[0] for t in top1) / len(top1))
        storage.put_scalar("aligndet/contrast_top1_chance", sum(t[1] for t in top1) / len(top1))
        return losses

    @staticmethod
    def _instance_ids(views: List[List[dict]]) -> List[List[torch.Tensor]]:
        """Per view and image, the batch-unique instance id of each pseudo-box: the same
        proposal has the same id in both views (``proposal_ids`` are aligned)."""
        per_image = zip(*[[x["instances"].proposal_ids for x in view] for view in views])
        offset, out = 0, [[], []]
        for pids in per_image:
            size = 1 + max((int(p.max()) for p in pids if len(p)), default=-1)
            for v, p in enumerate(pids):
                out[v].append(p + offset)
            offset += size
        return out

    def _branch(self, inputs: List[dict], ids: List[torch.Tensor], *, online: bool) -> dict:
        """One detector (online or momentum) on one view: the detection losses (online only)
        and per stage ``(embeddings, instance ids)`` of the boxes it contrasts."""
        backbone = self.backbone if online else self.momentum["backbone"]
        rpn = self.proposal_generator if online else self.momentum["proposal_generator"]
        roi_heads = self.roi_heads if online else self.momentum["roi_heads"]
        images = self.preprocess_image(inputs)
        targets = [x["instances"].to(self.device) for x in inputs]
        ids = [i.to(self.device) for i in ids]
        features = backbone(images.tensor)
        proposals, rpn_losses = rpn(images, features, targets)
        feats = [features[f] for f in roi_heads.box_in_features]
        losses = dict(rpn_losses) if online else {}
        embeddings = []
        rois = [p.proposal_boxes for p in proposals]
        heads, predictors = self._stages(roi_heads)
        thresholds = self._iou_thresholds(roi_heads)
        for k, (head, predictor, thr) in enumerate(zip(heads, predictors, thresholds)):
            samples = [
                match_rois_to_proposals(
                    r,
                    t.gt_boxes,
                    i,
                    image_size=t.image_size,
                    iou_threshold=thr,
                    max_rois=self.rois_per_image,
                )
                for r, t, i in zip(rois, targets, ids)
            ]
            x = head(roi_heads.box_pooler(feats, [s.proposal_boxes for s in samples]))
            _, deltas = predictor(x)
            if online:
                w = self.stage_loss_weights[k]
                name = "loss_box_reg" if len(heads) == 1 else f"loss_box_reg_stage{k}"
                losses[name] = w * self._regression_loss(predictor, samples, deltas)
            embeddings.append(self._embed(roi_heads, head, feats, samples, targets, ids, x, online))
            rois = self._refine(predictor, samples, deltas, images.image_sizes)
        return {"losses": losses, "embeddings": embeddings}

    def _embed(self, roi_heads, head, feats, samples, targets, ids, x, online: bool):
        """L2-normalised embeddings of the contrasted boxes and their instance ids: the sampled
        RoIs (``x`` are their box-head features), or the pseudo-boxes themselves."""
        if self.contrast_boxes == "proposals":
            x = head(roi_heads.box_pooler(feats, [t.gt_boxes for t in targets]))
        else:
            ids = [s.instance_ids for s in samples]
        z = (self.projector if online else self.momentum["projector"])(x)
        if online and self.predictor is not None:
            z = self.predictor(z)
        return F.normalize(z, dim=1), cat(ids)

    @staticmethod
    def _regression_loss(predictor, samples: List[Instances], deltas: torch.Tensor):
        """The predictor's box loss over the sampled (all positive) RoIs, averaged over them."""
        boxes = cat([s.proposal_boxes.tensor for s in samples])
        gt = cat([s.gt_boxes.tensor for s in samples])
        gt_classes = torch.zeros(len(boxes), dtype=torch.long, device=boxes.device)
        loss = predictor.box_reg_loss(boxes, gt, deltas, gt_classes)
        return loss * predictor.loss_weight.get("loss_box_reg", 1.0)

    @staticmethod
    def _refine(predictor, samples: List[Instances], deltas: torch.Tensor, image_sizes):
        """The next cascade stage's RoIs: this stage's sampled RoIs (not the appended
        pseudo-boxes) moved by its predicted deltas, without gradient, clipped to the image."""
        boxes = cat([s.proposal_boxes.tensor for s in samples])
        moved = predictor.box2box_transform.apply_deltas(deltas.detach()[:, :4], boxes)
        out = []
        for s, b, size in zip(samples, moved.split([len(s) for s in samples]), image_sizes):
            b = Boxes(b[~s.is_proposal])
            b.clip(size)
            out.append(b)
        return out
