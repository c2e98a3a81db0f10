"""Loading configs: renamed or removed recipes fail with a one-line hint naming what replaced
them; a training run's directory loads as its config.yaml with its weights; every shipped recipe
bounds the checkpoints it keeps."""

import glob
import os
import re

import pytest

from detectron2.config import LazyConfig
from freezedet.config import RENAMED_CONFIGS, load_config, renamed_config_hint, resolve_run
from freezedet.model_zoo import configs_root, get_config_file


def test_a_renamed_recipe_names_its_replacement(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_config("DeepForest/faster_rcnn_fpn_effl0_frozen.py")
    message = str(e.value)
    assert "\n" not in message
    assert "use DeepForest/faster_rcnn_fpn.py trunk.name=effl0 trunk.mode=frozen" in message
    # a config importing it (LazyConfig's relative import), as an old copy of a recipe would
    mine = tmp_path / "configs" / "Mine"
    mine.mkdir(parents=True)
    (tmp_path / "configs" / "DeepForest").mkdir()
    (mine / "trees.py").write_text(
        "from ..DeepForest.cascade_rcnn_nasfpn_r50_finetune import dataloader, model, train\n"
    )
    with pytest.raises(ImportError) as e:
        load_config(str(mine / "trees.py"))
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"{mine / 'trees.py'} imports "), message
    assert "use DeepForest/cascade_rcnn_nasfpn.py trunk.name=r50 trunk.mode=finetune" in message
    # any other missing import keeps detectron2's error
    (mine / "other.py").write_text("from .nothing_like_it import model\n")
    with pytest.raises(ImportError, match="nothing_like_it.py has to exist"):
        load_config(str(mine / "other.py"))


def test_renamed_table_and_rule_point_at_shipped_recipes():
    for old, new in RENAMED_CONFIGS.items():
        assert not os.path.exists(os.path.join(configs_root(), old)), old
        for named in re.findall(r"[\w/]+\.py", new):  # every file a hint names exists
            below = named[len("configs/") :] if named.startswith("configs/") else named
            assert os.path.isfile(os.path.join(configs_root(), below)), (old, named)
        assert renamed_config_hint(old).startswith(f"{old} was removed; use {new}")
    assert renamed_config_hint("OwnData/mask_rcnn_fpn_effl0_frozen.py") == (
        "OwnData/mask_rcnn_fpn_effl0_frozen.py was renamed: use OwnData/mask_rcnn_fpn.py "
        "trunk.name=effl0 trunk.mode=frozen (trunks and modes are overrides of one recipe per "
        "architecture: freezedet/config/trunks.py)"
    )
    # no shipped recipe is mistaken for a renamed one
    for path in glob.glob(os.path.join(configs_root(), "**", "*.py"), recursive=True):
        assert renamed_config_hint(path) is None, path


def test_a_run_directory_is_its_config_yaml_and_weights(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    cfg = load_config("DeepForest/faster_rcnn_fpn.py", ["train.max_iter=7", "trunk.mode=finetune"])
    LazyConfig.save(cfg, str(run / "config.yaml"))
    assert resolve_run(str(run)) == (str(run / "config.yaml"), None)
    (run / "model_0000004.pth").write_bytes(b"")
    (run / "last_checkpoint").write_text("model_0000004.pth")
    assert resolve_run(str(run)).weights == str(run / "model_0000004.pth")
    (run / "model_final.pth").write_bytes(b"")
    assert resolve_run(str(run)).weights == str(run / "model_final.pth")
    loaded = load_config(str(run), ["optimizer.lr=0.5"])
    assert loaded.train.max_iter == 7 and loaded.trunk.mode == "finetune"
    assert loaded.optimizer.lr == 0.5 and loaded.train.output_dir == cfg.train.output_dir
    assert resolve_run("DeepForest/faster_rcnn_fpn.py") == (
        get_config_file("DeepForest/faster_rcnn_fpn.py"),
        None,
    )


def test_every_recipe_bounds_its_checkpoints():
    recipes = [
        p
        for p in glob.glob(os.path.join(configs_root(), "*", "*.py"))
        if os.path.basename(os.path.dirname(p)) not in ("common", "studies")
    ]
    assert len(recipes) > 20, recipes
    for path in recipes:
        cfg = LazyConfig.load(path)
        if "train" in cfg:
            keep = cfg.train.checkpointer.get("max_to_keep", None)
            assert isinstance(keep, int) and keep >= 1, (path, keep)
