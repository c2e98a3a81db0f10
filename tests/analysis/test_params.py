"""The parameter / FLOP report: a ViT trunk's simple pyramid is its own (trainable) row."""

import torch

from detectron2.config import instantiate
from freezedet.analysis.flops import count_flops
from freezedet.analysis.params import component_of, parameter_table
from freezedet.model_zoo import get_config


def test_component_rows():
    assert component_of("backbone.bottom_up.trunk.vit.blocks.0.mlp.fc1.weight") == "trunk"
    assert component_of("backbone.bottom_up.pyramid.c3.weight") == "pyramid"
    assert component_of("backbone.bottom_up.trunk.vit.blocks.0.adapter_mlp.up.weight") == (
        "adapters"
    )
    assert component_of("module.backbone.fpn_lateral3.weight") == "neck"


def test_frozen_vit_rows_and_flops():
    cfg = get_config("common/models/faster_rcnn_simplefpn.py")
    cfg.model.backbone.bottom_up.timm_kwargs = dict(depth=1)
    cfg.model.backbone.out_channels = 32
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    rows = parameter_table(model)
    assert list(rows)[:3] == ["trunk", "pyramid", "neck"], list(rows)
    vit = model.backbone.bottom_up.trunk
    assert rows["trunk"]["total"] == sum(p.numel() for p in vit.parameters())
    assert rows["trunk"]["trainable"] == 0
    pyramid = model.backbone.bottom_up.pyramid
    assert rows["pyramid"]["trainable"] == rows["pyramid"]["total"] > 0
    assert rows["pyramid"]["total"] == sum(p.numel() for p in pyramid.parameters())
    flops = count_flops(model, 64, 64)
    assert flops["trunk"] > 0 and flops["pyramid"] > 0, flops
    parts = sum(v for k, v in flops.items() if k != "total")
    assert abs(parts - flops["total"]) < 1e-6 * max(1.0, flops["total"]) + 1e-3, flops
