"""AlignDet checkpoint -> detector: which components transfer."""

import pytest
import torch

from freezedet.checkpoint.aligndet import aligndet_to_detector, format_transfer_report

KEYS = {
    "backbone.bottom_up.trunk.conv_stem.weight": (8, 3, 3, 3),
    "backbone.fpn_lateral3.weight": (16, 8, 1, 1),
    "proposal_generator.rpn_head.conv.weight": (16, 16, 3, 3),
    "roi_heads.box_head.fc1.weight": (32, 64),
    "roi_heads.box_predictor.bbox_pred.weight": (4, 32),
    "roi_heads.box_predictor.cls_score.weight": (2, 32),
    "momentum.backbone.fpn_lateral3.weight": (16, 8, 1, 1),
    "projector.mlp.0.weight": (8, 32),
}


def _pretrained():
    return {k: torch.randn(s) for k, s in KEYS.items()}


def test_default_transfers_neck_rpn_and_box_head():
    out, report = aligndet_to_detector(_pretrained())
    assert sorted(out) == sorted(
        [
            "backbone.bottom_up.trunk.conv_stem.weight",
            "backbone.fpn_lateral3.weight",
            "proposal_generator.rpn_head.conv.weight",
            "roi_heads.box_head.fc1.weight",
            "roi_heads.box_predictor.bbox_pred.weight",
        ]
    )
    assert report["reinitialized"] == ["roi_heads.box_predictor.cls_score.weight"]
    assert "not selected" not in report["skipped"]


def test_selected_components_only_trunk_always():
    out, report = aligndet_to_detector(_pretrained(), components=("neck", "rpn"))
    assert sorted(out) == sorted(
        [
            "backbone.bottom_up.trunk.conv_stem.weight",
            "backbone.fpn_lateral3.weight",
            "proposal_generator.rpn_head.conv.weight",
        ]
    )
    assert sorted(report["skipped"]["not selected"]) == [
        "roi_heads.box_head.fc1.weight",
        "roi_heads.box_predictor.bbox_pred.weight",
        "roi_heads.box_predictor.cls_score.weight",
    ]
    assert report["transferred"]["roi_heads"] == []
    assert "skipped, not selected (3)" in format_transfer_report(report)


def test_unknown_component_is_a_clear_error():
    with pytest.raises(ValueError, match="'heads'.*train.aligndet_transfer"):
        aligndet_to_detector(_pretrained(), components=("neck", "heads"))
