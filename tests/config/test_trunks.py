"""Trunk and mode as overrides: named records, the selection step of load_config (before the
dotted overrides), errors that name the valid values, output dirs per (trunk, mode)."""

import os

import pytest
import torch
from omegaconf import OmegaConf

from detectron2.config import LazyConfig, instantiate
from detectron2.config import LazyCall as L
from freezedet.config import MODES, TRUNKS, TrunkRecord, apply_trunk_and_mode
from freezedet.engine import default_output_dir, load_config
from freezedet.model_zoo import get_config, get_config_file
from freezedet.modeling.backbone import FeatureCache

FPN = "DeepForest/faster_rcnn_fpn.py"


def test_records_are_named_and_complete():
    for name, record in TRUNKS.items():
        assert isinstance(record, TrunkRecord)
        assert record.input_format in ("RGB", "BGR"), name
        assert len(record.mean) == len(record.std) == 3, name
        assert record.trunk.mode == "frozen" and record.trunk.norm == "FrozenBN", name
    assert TRUNKS["effl0"].model_name == "tf_efficientnet_lite0"
    assert TRUNKS["effl0"].top1 == 75.1 and TRUNKS["r50"].top1 == 75.3
    assert TRUNKS["vits14"].patch_size == 14 and TRUNKS["vitb16clip"].top1 == 80.2
    assert TRUNKS["r50"].input_format == "BGR"
    assert set(MODES) == {"frozen", "finetune", "scratch"}


def test_default_needs_no_selection_step():
    """A plain LazyConfig.load gives the recipe's default; load_config without overrides (and
    with overrides that restate the default) changes nothing but the output dir and device."""
    plain = OmegaConf.to_container(get_config(FPN), resolve=False)
    plain["train"].pop("output_dir"), plain["train"].pop("device")
    for opts in ([], ["trunk.name=effl0", "trunk.mode=frozen"]):
        cfg = load_config(FPN, opts)
        assert cfg.train.output_dir == os.path.join(
            default_output_dir(get_config_file(FPN)), "effl0_frozen"
        )
        loaded = OmegaConf.to_container(cfg, resolve=False)
        loaded["train"].pop("output_dir"), loaded["train"].pop("device")
        assert loaded == plain


def test_selection_sets_trunk_statistics_format_and_weights():
    cfg = load_config(FPN, ["trunk.name=r50", "trunk.mode=finetune"])
    bottom_up = cfg.model.backbone.bottom_up
    assert bottom_up.depth == 50 and bottom_up.mode == "finetune" and bottom_up.norm == "FrozenBN"
    assert bottom_up.out_features == ["res3", "res4", "res5"]
    assert cfg.model.input_format == cfg.dataloader.train.mapper.image_format == "BGR"
    assert list(cfg.model.pixel_mean) == TRUNKS["r50"].mean
    assert cfg.train.init_checkpoint == TRUNKS["r50"].weights
    assert cfg.train.output_dir.endswith(
        os.path.join("DeepForest", "faster_rcnn_fpn", "r50_finetune")
    )
    scratch = load_config(FPN, ["trunk.mode=scratch"])
    assert scratch.model.backbone.bottom_up.norm == "BN" and scratch.train.init_checkpoint == ""


def test_trained_norm_of_the_coco_recipes():
    """SyncBN for a trained trunk comes from the mode selection (the recipe's trained_norm)."""
    name = "COCO/faster_rcnn_fpn_72ep.py"
    frozen = load_config(name)
    assert frozen.model.backbone.bottom_up.norm == "FrozenBN"
    for mode in ("finetune", "scratch"):
        cfg = load_config(name, [f"trunk.mode={mode}"])
        assert cfg.model.backbone.bottom_up.norm == "SyncBN", mode
        # the recipe's four FPN levels survive the re-selection
        assert cfg.model.backbone.bottom_up.out_features == ["res2", "res3", "res4", "res5"]
    assert load_config(name, ["trunk.mode=scratch"]).train.init_checkpoint == ""
    effl0 = load_config(name, ["trunk.name=effl0"])
    assert effl0.model.backbone.bottom_up.out_features == ["c2", "c3", "c4", "c5"]
    assert effl0.model.input_format == "RGB"


def test_dotted_overrides_apply_after_the_selection():
    """A key only the selected trunk takes (ResNet's stride_in_1x1), given before trunk.name in
    the list, is checked against and set on the selected trunk."""
    cfg = load_config(FPN, ["model.backbone.bottom_up.stride_in_1x1=False", "trunk.name=r50"])
    assert cfg.model.backbone.bottom_up.stride_in_1x1 is False
    assert cfg.model.backbone.bottom_up.depth == 50
    cfg = load_config(FPN, ["model.backbone.bottom_up.drop_path_rate=0.1", "trunk.name=effl1"])
    assert cfg.model.backbone.bottom_up.drop_path_rate == 0.1
    assert cfg.model.backbone.bottom_up.model_name == "tf_efficientnet_lite1"
    with pytest.raises(KeyError, match="stride_in_1x1"):  # not a TimmBackbone argument
        load_config(FPN, ["model.backbone.bottom_up.stride_in_1x1=False"])


def test_recipe_keys_of_the_trunk_carry_over():
    """The pyramid levels a recipe chose (the simple-pyramid recipe's C2-C5) and any key it set
    on its trunk besides the trunk's identity (a feature cache) survive a change of trunk."""
    cfg = load_config("DeepForest/faster_rcnn_simplefpn.py", ["trunk.name=vitb16clip"])
    bottom_up = cfg.model.backbone.bottom_up
    assert bottom_up.model_name == "vit_base_patch16_clip_224"
    assert bottom_up.out_features == ["c2", "c3", "c4", "c5"]
    assert list(cfg.model.pixel_mean) == TRUNKS["vitb16clip"].mean

    cfg = get_config(FPN)
    cfg.model.backbone.bottom_up.feature_cache = L(FeatureCache)(budget_mb=64)
    cfg.trunk.name = "effl2"
    apply_trunk_and_mode(cfg)
    assert cfg.model.backbone.bottom_up.model_name == "tf_efficientnet_lite2"
    assert cfg.model.backbone.bottom_up.feature_cache.budget_mb == 64


@pytest.mark.parametrize(
    "opts,match",
    [
        (
            ["trunk.name=effl9"],
            r"trunk.name='effl9' is not a trunk record .*; valid: effl0, effl1, ",
        ),
        (["trunk.mode=frozn"], r"trunk.mode='frozn'.*valid: frozen, finetune, scratch"),
        (["trunk.nme=effl1"], r"trunk overrides are \['trunk.name'"),
    ],
)
def test_unknown_values_name_the_valid_ones(opts, match):
    with pytest.raises((ValueError, KeyError), match=match):
        load_config(FPN, opts)


def test_recipe_that_fixes_its_trunk_refuses_a_selection():
    name = "DeepForest/cascade_rcnn_fpn_p2_effl0_frozen.py"
    assert "trunk" not in get_config(name)
    with pytest.raises(KeyError, match="fixes its trunk and mode"):
        load_config(name, ["trunk.mode=finetune"])
    assert load_config(name).train.output_dir == default_output_dir(get_config_file(name))


def test_selection_survives_the_yaml_round_trip(tmp_path):
    """config.yaml records the trunk; loading it back and selecting another works."""
    cfg = load_config(FPN, ["trunk.name=effl1", "trunk.mode=finetune"])
    path = str(tmp_path / "config.yaml")
    LazyConfig.save(cfg, path)
    reloaded = LazyConfig.load(path)
    assert dict(reloaded.trunk) == {"name": "effl1", "mode": "finetune"}
    again = load_config(path, ["trunk.mode=frozen", "train.output_dir=" + str(tmp_path)])
    assert again.model.backbone.bottom_up.model_name == "tf_efficientnet_lite1"
    assert again.model.backbone.bottom_up.mode == "frozen"


def test_selected_model_instantiates_in_its_mode():
    cfg = load_config("DeepForest/retinanet_nasfpn.py", ["trunk.name=r50", "trunk.mode=scratch"])
    cfg.model.backbone.num_repeats, cfg.model.backbone.out_channels = 1, 32
    model = instantiate(cfg.model)
    trunk = model.backbone.bottom_up
    assert trunk.mode == "scratch" and all(p.requires_grad for p in trunk.parameters())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in trunk.modules())
