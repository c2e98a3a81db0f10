"""Class-balanced box-predictor losses: hand-computed values, gradients, federated class
sampling, inference scores, checkpoint compatibility and a Cascade R-CNN train + test step."""

import math

import pytest
import torch
import torch.nn.functional as F

from detectron2.config import instantiate
from detectron2.layers import ShapeSpec
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.roi_heads import FastRCNNOutputLayers
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage
from freezedet.data.lvis import DatasetClassCounts
from freezedet.model_zoo import get_config
from freezedet.modeling.roi_heads import (
    ClassBalancedFastRCNNOutputLayers,
    effective_number_weights,
    federated_classes,
)


def _predictor(num_classes=3, **kw):
    torch.manual_seed(0)
    return ClassBalancedFastRCNNOutputLayers(
        ShapeSpec(channels=8),
        box2box_transform=Box2BoxTransform(weights=(10, 10, 5, 5)),
        num_classes=num_classes,
        **kw,
    )


LOGITS = torch.tensor([[2.0, -1.0, 0.5, 0.0], [0.0, 1.0, -2.0, 1.5]])  # K = 3, + background
GT = torch.tensor([0, 3])  # class 0, background


def _bce(x, y):
    return -(y * math.log(1 / (1 + math.exp(-x))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-x))))


def test_softmax_equals_detectron2_cross_entropy():
    loss = _predictor().classification_loss(LOGITS, GT)
    assert torch.allclose(loss, F.cross_entropy(LOGITS, GT))


def test_sigmoid_by_hand():
    loss = _predictor(loss="sigmoid").classification_loss(LOGITS, GT)
    # background logit (last column) unused; targets one-hot over the 3 classes
    hand = sum(_bce(x, y) for x, y in zip([2.0, -1.0, 0.5], [1, 0, 0]))
    hand += sum(_bce(x, 0) for x in [0.0, 1.0, -2.0])
    assert loss.item() == pytest.approx(hand / 2, rel=1e-6)


def test_federated_by_hand_and_gradients():
    # present: class 0; 2 classes in all; class 2 has no images, so class 1 is the sampled one
    p = _predictor(loss="federated", num_fed_classes=2, class_image_counts=[5, 4, 0])
    logits = LOGITS.clone().requires_grad_(True)
    loss = p.classification_loss(logits, GT)
    hand = _bce(2.0, 1) + _bce(-1.0, 0) + _bce(0.0, 0) + _bce(1.0, 0)
    assert loss.item() == pytest.approx(hand / 2, rel=1e-6)
    loss.backward()
    assert torch.all(logits.grad[:, 2:] == 0), "unsampled class and background get no gradient"
    assert torch.all(logits.grad[:, :2] != 0)


def test_effective_number_weights_by_hand():
    w = effective_number_weights(torch.tensor([1.0, 10.0, 100.0]), 0.9)
    raw = [0.1 / (1 - 0.9**n) for n in (1, 10, 100)]
    assert torch.allclose(w, torch.tensor([3 * r / sum(raw) for r in raw]))
    # n_c counts instances (Cui et al.'s samples); the image counts are not used for it
    p = _predictor(
        class_balance_beta=0.9, class_instance_counts=[1, 10, 100], class_image_counts=[50, 5, 1]
    )
    loss = p.classification_loss(LOGITS, GT)
    ce = F.cross_entropy(LOGITS, GT, reduction="none")
    assert loss.item() == pytest.approx(((ce[0] * w[0] + ce[1] * 1.0) / 2).item(), rel=1e-6)
    # class_balance_count="images": the earlier image-count weights
    by_images = _predictor(
        class_balance_beta=0.9, class_balance_count="images", class_image_counts=[1, 10, 100]
    )
    assert by_images.classification_loss(LOGITS, GT).item() == pytest.approx(loss.item())
    with pytest.raises(AssertionError, match=r"\['instances'\] counts"):
        _predictor(class_balance_beta=0.9, class_image_counts=[1, 10, 100])


def test_federated_sampling_follows_frequency():
    torch.manual_seed(0)
    counts = torch.tensor([100.0, 1.0, 0.0, 25.0, 9.0])
    draws = torch.stack(
        [federated_classes(torch.tensor([1, 5]), counts**0.5, 3) for _ in range(2000)]
    )
    assert draws.sum(1).eq(3).all() and draws[:, 1].all() and not draws[:, 2].any()
    # P(pick first among 0, 3, 4) = 10 / 18 etc.; sampling 2 of 3 w/o replacement
    freq = draws.float().mean(0)
    assert freq[0] > freq[3] > freq[4] > 0.3, freq


def test_sigmoid_inference_scores_have_background_column():
    p = _predictor(loss="sigmoid")
    props = [Instances((20, 20), proposal_boxes=Boxes(torch.tensor([[0, 0, 5, 5.0]] * 2)))]
    (probs,) = p.predict_probs((LOGITS, torch.zeros(2, 4)), props)
    s = torch.sigmoid(LOGITS[:, :3])
    assert torch.allclose(probs[:, :3], s)
    assert torch.allclose(probs[:, 3], (1 - s).prod(1))
    insts, _ = p.inference((LOGITS, torch.zeros(2, 4)), props)
    assert len(insts[0]) > 0 and (insts[0].scores <= 1).all()


def test_loads_softmax_checkpoint_and_needs_counts():
    ref = FastRCNNOutputLayers(
        ShapeSpec(channels=8),
        box2box_transform=Box2BoxTransform(weights=(10, 10, 5, 5)),
        num_classes=3,
    )
    p = _predictor(
        loss="federated", class_counts=DatasetClassCounts(dataset_names="some_train_set")
    )
    missing, unexpected = p.load_state_dict(ref.state_dict(), strict=False)
    assert missing == ["class_image_counts", "class_instance_counts"] and not unexpected
    with pytest.raises(AssertionError, match="class_counts"):
        _predictor(loss="federated")


def test_cascade_train_and_test_step():
    cfg = get_config("DeepForest/cascade_rcnn_nasfpn.py")
    cfg.model.roi_heads.num_classes = 20
    cfg.model.backbone.num_repeats, cfg.model.backbone.out_channels = 1, 32
    cfg.model.roi_heads.batch_size_per_image = 32
    cfg.model.proposal_generator.post_nms_topk = [50, 20]
    for p in cfg.model.roi_heads.box_predictors:
        p._target_ = ClassBalancedFastRCNNOutputLayers
        p.loss, p.num_fed_classes, p.class_balance_beta = "federated", 5, 0.99
        p.class_image_counts = list(range(1, 21))
        p.class_instance_counts = list(range(3, 23))
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    assert all(
        isinstance(p, ClassBalancedFastRCNNOutputLayers) for p in model.roi_heads.box_predictor
    )
    gt = Instances(
        (256, 256), gt_boxes=Boxes(torch.tensor([[10.0, 10, 60, 70], [70, 20, 120, 90]]))
    )
    gt.gt_classes = torch.tensor([3, 17])
    batch = [{"image": torch.randint(0, 255, (3, 256, 256), dtype=torch.uint8), "instances": gt}]
    model.train()
    with EventStorage():
        losses = model(batch)
    for s in range(3):
        assert math.isfinite(losses[f"loss_cls_stage{s}"].item()), losses
    sum(losses.values()).backward()
    w = [p.cls_score.weight.grad for p in model.roi_heads.box_predictor]
    assert all(g is not None and g.abs().sum() > 0 for g in w)
    model.eval()
    for p in model.roi_heads.box_predictor:
        p.test_score_thresh = 0.0
    with torch.no_grad():
        (out,) = model([{"image": batch[0]["image"]}])
    scores = out["instances"].scores
    assert len(scores) > 0 and ((scores >= 0) & (scores <= 1)).all()
