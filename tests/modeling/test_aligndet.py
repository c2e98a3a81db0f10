"""AlignDetPretrainer: one CPU train step (finite losses, gradients only on online trainable
parameters), the contrastive loss is lowest for identical views with equal online / momentum
nets, Cascade R-CNN + NAS-FPN works, eval mode is the online detector."""

import pytest
import torch

from detectron2.config import instantiate
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from freezedet.model_zoo import get_config
from freezedet.modeling.meta_arch import AlignDetPretrainer, box_infonce

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
    cfg.model.predictor_hidden_dim = 128
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
    for prefix in prefixes + ("predictor.", "roi_heads.box_predictor.bbox_pred."):
        grads = [model.get_parameter(n).grad for n in with_grad if n.startswith(prefix)]
        assert grads and any(g.abs().sum() > 0 for g in grads), prefix
    # roi_cls_weight=0: the pseudo-class classifier is not trained (re-initialised anyway)
    assert not any(n.startswith("roi_heads.box_predictor.cls_score") for n in with_grad)
    model.zero_grad(set_to_none=True)


def _contrast(model, batch):
    model.train()
    with torch.no_grad():
        return model(batch)["loss_contrast"].item()


def test_contrastive_loss_minimal_for_identical_views_and_nets():
    model = _model(predictor_hidden_dim=0, symmetric=False)
    for name, online in model.momentum_pairs_online().items():
        for (k, a), b in zip(
            online.state_dict().items(), model.momentum[name].state_dict().values()
        ):
            assert torch.equal(a, b), f"momentum copy differs at start: {name}.{k}"
    same = _contrast(model, _batch(same_views=True))
    # identical embeddings in both branches: InfoNCE at cos = 1 on the diagonal
    assert same < _contrast(model, _batch(same_views=False))
    with torch.no_grad():
        for p in model.momentum["projector"].parameters():
            p.add_(torch.randn_like(p) * 0.05)
    assert same < _contrast(model, _batch(same_views=True))


def test_box_infonce_values():
    q = torch.nn.functional.normalize(torch.randn(5, 8), dim=1)
    loss = box_infonce(q, q, 0.5)
    logits = q @ q.t() / 0.5
    expected = (torch.logsumexp(logits, 1) - logits.diag()).mean()
    assert torch.allclose(loss, expected, atol=1e-6)
    assert loss < box_infonce(q, q.roll(1, 0), 0.5)


def test_eval_is_the_online_detector(model):
    model.eval()
    with torch.no_grad():
        out = model([{"image": torch.zeros(3, SIZE, SIZE, dtype=torch.uint8)}])
    assert out[0]["instances"].image_size == (SIZE, SIZE)
    assert (out[0]["instances"].pred_classes == 0).all()


def test_cascade_nasfpn_step():
    model = _model("DeepForest/aligndet_pretrain_cascade_rcnn_nasfpn_effl0.py", symmetric=False)
    assert len(model.roi_heads.box_head) == 3
    model.train()
    losses = model(_batch())
    assert {f"loss_box_reg_stage{i}" for i in range(3)} <= set(losses)
    assert not any(k.startswith("loss_cls") for k in losses)
    for k, v in losses.items():
        assert torch.isfinite(v), k
    sum(losses.values()).backward()
    for i in range(3):
        assert model.roi_heads.box_head[i].fc1.weight.grad.abs().sum() > 0, i
