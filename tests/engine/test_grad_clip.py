"""train.clip_grad: the optimizer clips all its gradients together before each step, through
torch's step pre-hook (the optimizer keeps its class)."""

import pytest
import torch

from freezedet.engine import build_optimizer
from freezedet.engine.grad_clip import GradientClipper, add_gradient_clipping


def _sgd_step(clip_cfg):
    a, b = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(4))
    frozen = torch.nn.Parameter(torch.zeros(2))  # no gradient: ignored
    opt = add_gradient_clipping(torch.optim.SGD([a, b, frozen], lr=1.0), clip_cfg)
    a.grad, b.grad = torch.full((3,), 3.0), torch.full((4,), -4.0)
    opt.step()
    return opt, -a.detach(), -b.detach()  # lr 1 from 0: the parameters are minus the gradients


def test_norm_clips_the_norm_of_all_gradients_together():
    opt, ga, gb = _sgd_step({"clip_type": "norm", "clip_value": 1.0})
    assert type(opt) is torch.optim.SGD
    total = torch.cat([ga, gb]).norm()
    assert torch.allclose(total, torch.tensor(1.0), atol=1e-5), total
    # one factor for all: the direction of the joint gradient is kept
    assert torch.allclose(ga / gb[0], torch.full((3,), -0.75), atol=1e-5), (ga, gb)


def test_value_clips_every_element():
    _, ga, gb = _sgd_step({"clip_type": "value", "clip_value": 2.0})
    assert torch.equal(ga, torch.full((3,), 2.0)) and torch.equal(gb, torch.full((4,), -2.0))


def test_unknown_clip_type_is_an_error():
    with pytest.raises(AssertionError, match="clip_type='l1'"):
        GradientClipper(clip_type="l1")


def test_build_optimizer_reads_train_clip_grad():
    from detectron2.config import LazyCall as L
    from detectron2.solver import get_default_optimizer_params
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(
        {
            "optimizer": L(torch.optim.SGD)(
                params=L(get_default_optimizer_params)(), lr=1.0, momentum=0.0
            ),
            "train": {"clip_grad": {"enabled": True, "clip_type": "value", "clip_value": 0.5}},
        }
    )
    model = torch.nn.Linear(2, 1, bias=False)
    opt = build_optimizer(cfg, model)
    model.weight.data.zero_()
    model.weight.grad = torch.tensor([[3.0, -0.25]])
    opt.step()
    assert torch.equal(model.weight.detach(), torch.tensor([[-0.5, 0.25]]))
    cfg.train.clip_grad.enabled = False
    opt = build_optimizer(cfg, model)
    model.weight.data.zero_()
    model.weight.grad = torch.tensor([[3.0, -0.25]])
    opt.step()
    assert torch.equal(model.weight.detach(), torch.tensor([[-3.0, 0.25]]))
