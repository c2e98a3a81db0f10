"""AlignDetPretrainer: one CPU train step (finite losses, gradients only on online trainable
parameters), the contrastive loss against a literal transcription of the official one, RoI
sampling, asymmetric views with the momentum detector's own RPN, regression averaged over
positives, the contrastive loss is lowest for identical views with equal online / momentum
nets, Cascade R-CNN + NAS-FPN works, eval mode is the online detector."""

import math

import pytest
import torch
import torch.nn.functional as F

from detectron2.config import instantiate
from detectron2.structures import Boxes, Instances, pairwise_iou
from detectron2.utils.events import EventStorage

from freezedet.model_zoo import get_config
from freezedet.modeling.meta_arch import (
    AlignDetPretrainer,
    box_contrast,
    box_contrast_chance,
    match_rois_to_proposals,
)
from freezedet.modeling.meta_arch.aligndet import box_contrast_top1

SIZE = 128


def _model(recipe="DeepForest/aligndet_pretrain_faster_rcnn_fpn_effl0.py", **kwargs):
    cfg = get_config(recipe)
    det = cfg.model.detector
    det.roi_heads.batch_size_per_image = 32
    det.proposal_generator.pre_nms_topk = (200, 100)
    det.proposal_generator.post_nms_topk = (100, 50)
    # narrow neck and box heads: CPU-cheap, same structure
    if "num_repeats" not in det.backbone:
        det.backbone.out_channels = 64
    for head in det.roi_heads.get("box_heads") or [det.roi_heads.box_head]:
        head.fc_dims = [64, 64]
    for pred in det.roi_heads.get("box_predictors") or [det.roi_heads.box_predictor]:
        pred.input_shape.channels = 64
    cfg.model.projector_hidden_dim = 128
    for k, v in kwargs.items():
        setattr(cfg.model, k, v)
    torch.manual_seed(0)
    return instantiate(cfg.model)


def _view(image, boxes):
    inst = Instances((SIZE, SIZE))
    inst.gt_boxes = Boxes(boxes.clone())
    inst.gt_classes = torch.zeros(len(boxes), dtype=torch.int64)
    inst.proposal_ids = torch.arange(len(boxes))
    return {"image": image, "height": SIZE, "width": SIZE, "instances": inst}


def _batch(seed=0, n_boxes=6, same_views=True):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(2):
        image = torch.randint(0, 255, (3, SIZE, SIZE), generator=g, dtype=torch.uint8)
        xy = torch.randint(0, SIZE - 40, (n_boxes, 2), generator=g).float()
        wh = torch.randint(12, 40, (n_boxes, 2), generator=g).float()
        boxes = torch.cat([xy, xy + wh], dim=1)
        v1 = _view(image, boxes)
        if same_views:
            v2 = _view(image.clone(), boxes)
        else:  # horizontal flip, boxes flipped with it: same proposals, other pixels
            flipped = boxes[:, [2, 1, 0, 3]] * torch.tensor([-1.0, 1, -1, 1]) + torch.tensor(
                [SIZE, 0, SIZE, 0]
            )
            v2 = _view(image.flip(-1), flipped)
        out.append({"views": [v1, v2], "image_id": len(out)})
    return out


@pytest.fixture(autouse=True)
def storage():
    # detectron2's heads log training statistics to the current event storage
    with EventStorage(0) as s:
        yield s


@pytest.fixture(scope="module")
def model():
    return _model()


def test_defaults_are_the_papers():
    cfg = get_config("DeepForest/aligndet_pretrain_faster_rcnn_fpn_effl0.py")
    m = instantiate(cfg.model)
    assert (m.symmetric, m.predictor, m.contrast_boxes, m.negatives) == (
        False,
        None,
        "rois",
        "both",
    ), (m.symmetric, m.predictor, m.contrast_boxes, m.negatives)
    assert m.temperature == 0.5 and m.rois_per_image == 4096, (m.temperature, m.rois_per_image)
    assert [type(x).__name__ for x in m.projector] == ["Linear", "ReLU", "Linear"]
    assert set(m.momentum) == {"backbone", "proposal_generator", "roi_heads", "projector"}
    # the two measured deviations (docs/results/aligndet_deepforest.md, "Diagnosis"): AlignDet's
    # per-image lr at batch 2, and the box regression at 0.1 of AlignDet's weight
    assert cfg.optimizer.lr == pytest.approx(0.02 / 16 * 2), cfg.optimizer.lr
    assert m.roi_heads.box_predictor.loss_weight == {"loss_box_reg": 0.1}


def test_train_step_gradients_only_on_online_trainable(model):
    assert isinstance(model, AlignDetPretrainer)
    model.train()
    model.zero_grad(set_to_none=True)
    losses = model(_batch(same_views=False))
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_loc", "loss_box_reg", "loss_contrast"}
    for k, v in losses.items():
        assert torch.isfinite(v), k
    sum(losses.values()).backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    for n, p in model.named_parameters():
        if n.startswith("momentum.") or n.startswith("backbone.bottom_up."):
            assert not p.requires_grad and p.grad is None, n
    assert all(model.get_parameter(n).requires_grad for n in with_grad)
    prefixes = ("backbone.fpn_", "proposal_generator.", "roi_heads.box_head.", "projector.")
    for prefix in prefixes + ("roi_heads.box_predictor.bbox_pred.",):
        grads = [model.get_parameter(n).grad for n in with_grad if n.startswith(prefix)]
        assert grads and any(g.abs().sum() > 0 for g in grads), prefix
    # the pseudo-class classifier gets no loss (it is re-initialised for fine-tuning anyway)
    assert not any(n.startswith("roi_heads.box_predictor.cls_score") for n in with_grad)
    model.zero_grad(set_to_none=True)


def _official_contrast(query, query_ids, key, key_ids, temperature):
    """AlignDet's convfc_bbox_head.loss + ContrastiveLoss, transcribed loop by loop."""
    total, n = 0.0, 0
    for label in torch.unique(query_ids):
        q = query[query_ids == label]
        k = key[key_ids == label] if (key_ids == label).any() else q
        neg = torch.cat([query[query_ids != label], key[key_ids != label]]).detach()
        feats = torch.cat([k[:, None], neg[None].expand(len(k), -1, -1)], dim=1)
        logits = torch.bmm(q[None].expand(len(k), -1, -1), feats.permute(0, 2, 1))
        logits = logits.reshape(len(q) * len(k), -1) / temperature
        labels = torch.zeros(len(logits), dtype=torch.long)
        total = total + F.cross_entropy(logits, labels)
        n += 1
    return total / n


def test_box_contrast_matches_the_official_loss():
    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(9, 8, generator=g), dim=1).requires_grad_()
    k = F.normalize(torch.randn(7, 8, generator=g), dim=1)
    # several RoIs per instance in both branches; instance 3 has no momentum RoI
    qi = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 2])
    ki = torch.tensor([0, 1, 1, 2, 2, 2, 5])
    loss = box_contrast(q, qi, k, ki, 0.5)
    ref = _official_contrast(q, qi, k, ki, 0.5)
    assert torch.allclose(loss, ref, atol=1e-5), (loss.item(), ref.item())
    g1 = torch.autograd.grad(loss, q)[0]
    g2 = torch.autograd.grad(_official_contrast(q, qi, k, ki, 0.5), q)[0]
    assert torch.allclose(g1, g2, atol=1e-5), (g1 - g2).abs().max()
    # negatives from momentum keys only, one key per query: plain InfoNCE over the keys
    q1 = F.normalize(torch.randn(5, 8, generator=g), dim=1)
    k1 = F.normalize(torch.randn(5, 8, generator=g), dim=1)
    ids = torch.arange(5)
    infonce = F.cross_entropy(q1 @ k1.t() / 0.5, ids)
    got = box_contrast(q1, ids, k1, ids, 0.5, negatives="momentum")
    assert torch.allclose(got, infonce, atol=1e-6), (got.item(), infonce.item())
    # with online negatives as well the loss is larger (more negatives)
    assert box_contrast(q1, ids, k1, ids, 0.5) > got
    # uninformative (identical) embeddings give exactly the chance level
    same = F.normalize(torch.ones(9, 8), dim=1)
    flat = box_contrast(same, qi, same[:7], ki, 0.5)
    assert flat.item() == pytest.approx(box_contrast_chance(qi, ki), abs=1e-5)
    assert box_contrast_chance(ids, ids, negatives="momentum") == pytest.approx(math.log(5))


def _instance_embeddings(ids, dim=64):
    """Orthonormal directions, one per instance id: an oracle box embedding."""
    basis = torch.linalg.qr(torch.randn(dim, dim, generator=torch.Generator().manual_seed(1)))[0]
    return basis[ids]


@pytest.mark.parametrize("negatives", ["both", "momentum"])
def test_box_contrast_sign_conventions(negatives):
    """An oracle embedding (each instance its own direction in both branches) is far below the
    chance level; swapping the positives (every key carries another instance's direction) is far
    above it. The loss must tell a query's own box in the other view from all other boxes."""
    # 12 instances, 1-3 online and 1-3 momentum RoIs each, as the RoI matching produces them
    qi = torch.tensor([i for i in range(12) for _ in range(1 + i % 3)])
    ki = torch.tensor([i for i in range(12) for _ in range(1 + (i + 1) % 3)])
    chance = box_contrast_chance(qi, ki, negatives=negatives)
    q, k = _instance_embeddings(qi), _instance_embeddings(ki)
    oracle = box_contrast(q, qi, k, ki, 0.1, negatives=negatives).item()
    swapped = box_contrast(q, qi, _instance_embeddings((ki + 1) % 12), ki, 0.1, negatives=negatives)
    assert oracle < 0.01 * chance, (oracle, chance)
    assert swapped.item() > 2.0 * chance, (swapped.item(), chance)
    # at the paper's temperature the oracle's loss is bounded below: cosine logits are <= 2
    n_neg = math.exp(chance) - 1
    oracle_05 = box_contrast(q, qi, k, ki, 0.5, negatives=negatives).item()
    assert oracle_05 < chance and oracle_05 >= math.log1p(n_neg * math.exp(-2.0)) - 0.5
    # the ranking view of the same embeddings: the oracle ranks every query's own key first
    top1, top1_chance = box_contrast_top1(q, qi, k, ki, negatives=negatives)
    assert top1 == 1.0 and 0 < top1_chance < 0.2, (top1, top1_chance)
    bad, _ = box_contrast_top1(q, qi, _instance_embeddings((ki + 1) % 12), ki, negatives=negatives)
    assert bad == 0.0, bad


def test_box_contrast_top1_same_view_negatives_count():
    """With negatives="both" a same-view box of another instance closer than the key is a miss;
    with momentum-only negatives it is not a candidate."""
    q = F.normalize(torch.tensor([[1.0, 0.1], [1.0, 0.0]]), dim=1)
    k = F.normalize(torch.tensor([[1.0, 0.5], [0.0, 1.0]]), dim=1)
    ids = torch.tensor([0, 1])
    # query 0: key 0 at cos 0.94, the other query at 0.995; query 1: key 1 at cos 0
    assert box_contrast_top1(q, ids, k, ids, negatives="both") == (0.0, pytest.approx(1 / 3))
    assert box_contrast_top1(q, ids, k, ids, negatives="momentum") == (0.5, 0.5)


def test_match_rois_to_proposals():
    proposals = Boxes(torch.tensor([[0.0, 0, 20, 20], [40, 40, 80, 80]]))
    ids = torch.tensor([7, 11])
    rois = Boxes(
        torch.tensor(
            [
                [1.0, 1, 21, 21],
                [0, 0, 19, 22],
                [41, 40, 80, 79],
                [100, 100, 110, 110],
                [0, 0, 40, 40],
            ]
        )
    )
    s = match_rois_to_proposals(
        rois, proposals, ids, image_size=(128, 128), iou_threshold=0.5, max_rois=100
    )
    iou = pairwise_iou(s.proposal_boxes, s.gt_boxes).diagonal()
    assert (iou >= 0.5).all(), iou
    # 3 RoIs match (two on proposal 7, one on 11) plus the 2 appended proposals themselves
    assert sorted(s.instance_ids.tolist()) == [7, 7, 7, 11, 11], s.instance_ids
    assert int(s.is_proposal.sum()) == 2, s.is_proposal
    capped = match_rois_to_proposals(
        rois, proposals, ids, image_size=(128, 128), iou_threshold=0.5, max_rois=2
    )
    assert len(capped) == 2, len(capped)


def test_asymmetric_views_and_momentum_rpn(model):
    """Online backbone + RPN see view 1 only; the momentum detector (own RPN) sees view 2."""
    calls = []

    def hook(name):
        def record(module, inputs, output):
            calls.append((name, inputs[0].tensor.clone()))

        return record

    handles = [
        model.proposal_generator.register_forward_hook(hook("online")),
        model.momentum["proposal_generator"].register_forward_hook(hook("momentum")),
    ]
    batch = _batch(same_views=False)
    model.train()
    try:
        with torch.no_grad():
            model(batch)
    finally:
        for h in handles:
            h.remove()
    assert [c[0] for c in calls] == ["online", "momentum"], [c[0] for c in calls]
    for (name, seen), v in zip(calls, (0, 1)):
        expected = model.preprocess_image([x["views"][v] for x in batch]).tensor
        assert torch.equal(seen, expected), (name, v)


def test_regression_is_averaged_over_positives(model):
    """loss_box_reg = the predictor's L1 over the sampled (positive) RoIs / their number, times
    the recipe's regression weight."""
    model.train()
    torch.manual_seed(0)
    batch = _batch()
    seen = {}
    pooler = model.roi_heads.box_pooler

    def record(module, inputs, output):  # the first call: the online branch's sampled RoIs
        seen.setdefault("boxes", inputs[1])

    h = pooler.register_forward_hook(record)
    try:
        with torch.no_grad():
            loss = model(batch)["loss_box_reg"]
    finally:
        h.remove()
    rois = torch.cat([b.tensor for b in seen["boxes"]])
    views = [x["views"][0] for x in batch]
    images = model.preprocess_image(views)
    with torch.no_grad():
        features = model.backbone(images.tensor)
        x = model.roi_heads.box_head(
            pooler([features[f] for f in model.roi_heads.box_in_features], seen["boxes"])
        )
        deltas = model.roi_heads.box_predictor(x)[1]
    gt = torch.cat(
        [
            v["instances"].gt_boxes[pairwise_iou(v["instances"].gt_boxes, b).argmax(0)].tensor
            for v, b in zip(views, seen["boxes"])
        ]
    )
    target = model.roi_heads.box_predictor.box2box_transform.get_deltas(rois, gt)
    weight = model.roi_heads.box_predictor.loss_weight["loss_box_reg"]
    expected = weight * (deltas - target).abs().sum() / len(rois)
    # RPN RoIs matched besides the appended pseudo-boxes
    assert len(rois) > sum(len(v["instances"]) for v in views), len(rois)
    assert torch.allclose(loss, expected, atol=1e-5), (loss.item(), expected.item())


def _contrast(model, batch):
    model.train()
    with torch.no_grad():
        return model(batch)["loss_contrast"].item()


def test_contrastive_loss_minimal_for_identical_views_and_nets():
    model = _model()
    for name, online in model.momentum_pairs_online().items():
        for (k, a), b in zip(
            online.state_dict().items(), model.momentum[name].state_dict().values()
        ):
            assert torch.equal(a, b), f"momentum copy differs at start: {name}.{k}"
    same = _contrast(model, _batch(same_views=True))
    # identical embeddings in both branches
    assert same < _contrast(model, _batch(same_views=False))
    with torch.no_grad():
        for p in model.momentum["projector"].parameters():
            p.add_(torch.randn_like(p) * 0.05)
    assert same < _contrast(model, _batch(same_views=True))


@pytest.mark.parametrize(
    "options",
    [
        dict(contrast_boxes="proposals", negatives="momentum", predictor_hidden_dim=32),
        dict(symmetric=True, projector_norm="LN"),
    ],
)
def test_deviation_options_step(options):
    model = _model(**options)
    model.train()
    losses = model(_batch(same_views=False))
    for k, v in losses.items():
        assert torch.isfinite(v), k
    sum(losses.values()).backward()
    assert model.projector[0].weight.grad.abs().sum() > 0


def test_eval_is_the_online_detector(model):
    model.eval()
    with torch.no_grad():
        out = model([{"image": torch.zeros(3, SIZE, SIZE, dtype=torch.uint8)}])
    assert out[0]["instances"].image_size == (SIZE, SIZE)
    assert (out[0]["instances"].pred_classes == 0).all()


def test_cascade_nasfpn_step():
    model = _model("DeepForest/aligndet_pretrain_cascade_rcnn_nasfpn_effl0.py")
    assert len(model.roi_heads.box_head) == 3
    assert model.stage_loss_weights == [1.0, 0.5, 0.25], model.stage_loss_weights
    model.train()
    losses = model(_batch())
    assert {f"loss_box_reg_stage{i}" for i in range(3)} <= set(losses)
    assert not any(k.startswith("loss_cls") for k in losses)
    for k, v in losses.items():
        assert torch.isfinite(v), k
    sum(losses.values()).backward()
    for i in range(3):
        assert model.roi_heads.box_head[i].fc1.weight.grad.abs().sum() > 0, i
