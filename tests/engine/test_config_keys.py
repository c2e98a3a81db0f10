"""Unknown keys are errors at load time, with the closest valid keys: in overrides and in
config files, also under LazyCalls (checked against the target's signature)."""

import pytest

from freezedet.engine import load_config
from freezedet.config import accepted_arguments

CONFIG = "DeepForest/faster_rcnn_fpn.py"


def test_override_of_an_argument_the_target_does_not_take():
    with pytest.raises(KeyError, match=r"DatasetMapper takes no argument 'image_fromat' \(clos"
                       r"est: image_format"):  # fmt: skip
        load_config(CONFIG, ["dataloader.train.mapper.image_fromat=BGR"])
    # StandardROIHeads(**kwargs) hands them to ROIHeads: its arguments count, a typo does not
    with pytest.raises(KeyError, match="closest: num_classes"):
        load_config(CONFIG, ["model.roi_heads.num_clases=3"])
    cfg = load_config(CONFIG, ["model.roi_heads.proposal_append_gt=False"])
    assert cfg.model.roi_heads.proposal_append_gt is False


def test_typo_in_a_config_file(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(
        "from freezedet.model_zoo import get_config\n"
        f"_base = get_config({CONFIG!r})\n"
        "model, dataloader, optimizer, train = _base.model, _base.dataloader, _base.optimizer, "
        "_base.train\n"
        "lr_multiplier = _base.lr_multiplier\n"
        "model.roi_heads.box_predictor.test_score_treshold = 0.3\n"
    )
    with pytest.raises(KeyError, match=r"model.roi_heads.box_predictor calls FastRCNNOutputLayers"
                       r", which has no argument 'test_score_treshold' \(closest: test_score_thr"):  # fmt: skip
        load_config(str(path))


def test_accepted_arguments():
    from detectron2.data import build_detection_train_loader

    assert "total_batch_size" in accepted_arguments(build_detection_train_loader)  # @configurable
    assert accepted_arguments("detectron2.data.DatasetMapper")[0] == "is_train"
    assert accepted_arguments(dict) is None  # no signature: anything goes

    def takes_kwargs(a, **kwargs):
        return a

    assert accepted_arguments(takes_kwargs) is None


def test_option_after_the_overrides():
    # argparse hands `--resume` placed after an override to the overrides: say where it goes
    with pytest.raises(ValueError, match=r"'--resume' is an option, not key=value: options .* go "
                       r"before the key=value overrides"):  # fmt: skip
        load_config(CONFIG, ["train.max_iter=10", "--resume"])
    with pytest.raises(ValueError, match="'train.max_iter' is not of the form key=value"):
        load_config(CONFIG, ["train.max_iter"])
