"""Momentum (EMA) math: the cosine schedule and the update of parameters and buffers."""

import math

import pytest
import torch
from torch import nn

from freezedet.engine.ema import cosine_momentum, ema_update_


def test_cosine_momentum_schedule():
    assert cosine_momentum(0.996, 0, 100) == pytest.approx(0.996)
    assert cosine_momentum(0.996, 100, 100) == pytest.approx(1.0)
    assert cosine_momentum(0.996, 50, 100) == pytest.approx(0.998)
    assert cosine_momentum(0.996, 25, 100) == pytest.approx(
        1 - 0.004 * (math.cos(math.pi / 4) + 1) / 2
    )
    values = [cosine_momentum(0.99, i, 10) for i in range(11)]
    assert values == sorted(values), "momentum never decreases"


def _net(seed):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    net[2].weight.requires_grad_(False)  # a frozen parameter
    net[1].running_mean.normal_()
    with torch.no_grad():
        net[1].weight.normal_()
    return net


def test_ema_update_math():
    target, source = _net(0), _net(1)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    ema_update_(target, source, 0.9)
    src = source.state_dict()
    for k in ("0.weight", "0.bias", "1.weight", "2.bias"):
        expected = 0.9 * before[k] + 0.1 * src[k]
        assert torch.allclose(target.state_dict()[k], expected, atol=1e-7), k
        assert not torch.allclose(target.state_dict()[k], src[k]), k
    # frozen parameters and buffers are copied exactly
    for k in ("2.weight", "1.running_mean", "1.running_var", "1.num_batches_tracked"):
        assert torch.equal(target.state_dict()[k], src[k]), k


def test_ema_update_extremes():
    target, source = _net(0), _net(1)
    before = {k: v.clone() for k, v in target.named_parameters()}
    ema_update_(target, source, 1.0)
    assert torch.equal(target[0].weight, before["0.weight"])
    ema_update_(target, source, 0.0)
    for (k, t), s in zip(target.named_parameters(), source.parameters()):
        assert torch.equal(t, s), k


def test_ema_update_rejects_other_structures():
    with pytest.raises(AssertionError, match="differ"):
        ema_update_(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 2)), 0.5)
