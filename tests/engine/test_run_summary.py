"""The start-of-run summary: recipe choices, and the LR schedule's effective iterations match
what detectron2's LRMultiplier does."""

import logging
import os
import subprocess
import sys

import pytest
import torch

from detectron2.config import instantiate
from detectron2.solver import LRMultiplier
from freezedet.engine import describe_lr_schedule, describe_run, load_config
from freezedet.engine.summary import schedule_points

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _lr_changes(scheduler, max_iter):
    """(last warmup iteration + 1, [(iteration, lr) where the LR jumps]) by running the real
    LRMultiplier over an optimizer."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = LRMultiplier(opt, scheduler, max_iter)
    lrs = []
    for _ in range(max_iter):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    warm = next(i for i in range(1, max_iter) if lrs[i] <= lrs[i - 1])
    jumps = [(i, lrs[i]) for i in range(warm, max_iter) if abs(lrs[i] - lrs[i - 1]) > 1e-9]
    return warm - 1, jumps


@pytest.mark.parametrize("max_iter", [300, 600, 77])
def test_schedule_points_match_lr_multiplier(max_iter):
    cfg = load_config("DeepForest/faster_rcnn_fpn.py", [f"train.max_iter={max_iter}"])
    scheduler = instantiate(cfg.lr_multiplier)
    p = schedule_points(scheduler, max_iter)
    warm, jumps = _lr_changes(scheduler, max_iter)
    assert p["warmup"] == warm and [i for i, _ in p["steps"]] == [i for i, _ in jumps], (p, jumps)
    line = describe_lr_schedule(scheduler, max_iter, 0.01)
    # the recipe stores warmup 50 / 300 and steps at 8/9, 17/18 as fractions of max_iter
    expected = {300: (50, 266, 283), 600: (100, 532, 566), 77: (13, 69, 73)}[max_iter]
    assert (warm, jumps[0][0], jumps[1][0]) == expected
    assert f"warmup over the first {expected[0]} iterations" in line
    assert f"×0.1 from iteration {expected[1]}, ×0.01 from iteration {expected[2]}" in line


def test_schedule_points_of_long_schedules_are_exact():
    """Long schedules are sampled, then each change point is bisected: still the exact
    iteration (compared with evaluating every iteration)."""
    max_iter = 30011
    cfg = load_config("DeepForest/faster_rcnn_fpn.py", [f"train.max_iter={max_iter}"])
    scheduler = instantiate(cfg.lr_multiplier)
    p = schedule_points(scheduler, max_iter)
    values = [float(scheduler(i / max_iter)) for i in range(max_iter)]
    warm = next(i for i in range(max_iter - 1) if values[i + 1] <= values[i])
    jumps = [i for i in range(warm + 1, max_iter) if abs(values[i] - values[i - 1]) > 1e-9]
    assert p["warmup"] == warm and [i for i, _ in p["steps"]] == jumps, (p, warm, jumps)
    assert len(jumps) == 2 and jumps[0] == 26610, jumps  # 266/300 of 30011, rounded up


def test_summary_shows_inherited_choices():
    lines = "\n".join(describe_run(load_config("DeepForest/faster_rcnn_fpn.py")))
    assert "no resizing: images go in at their file size" in lines
    assert "anchors: sizes [[16], [32], [64], [128]]" in lines
    assert "num_classes=1" in lines and "model outputs at most 300, AP counts 300" in lines
    own = "\n".join(describe_run(load_config("OwnData/faster_rcnn_fpn.py")))
    assert "json_file=None (not set)" in own and "ResizeShortestEdge(short_edge_length=640" in own
    assert "AP counts auto" in own and "anchors: sizes [[32], [64], [128], [256]]" in own


def test_help_is_fast_and_shows_freezedet_examples():
    """--help parses before importing torch / detectron2 (seconds on a small machine)."""
    code = (
        "import runpy, sys\n"
        "sys.argv = ['train_net.py', '--help']\n"
        "sys.path.insert(0, 'tools')\n"  # as `python tools/train_net.py` does
        "try:\n    runpy.run_path('tools/train_net.py', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('heavy imports:', sorted({'torch', 'detectron2'} & set(sys.modules)))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "heavy imports: []" in r.stdout
    assert "--allow-missing-weights" in r.stdout and "configs/OwnData" in r.stdout
    assert "MODEL.WEIGHTS" not in r.stdout and "cfg.yaml" not in r.stdout


def test_every_recipe_has_a_summary():
    import glob

    from freezedet.model_zoo import configs_root

    root = configs_root()
    recipes = [
        p
        for p in glob.glob(os.path.join(root, "**", "*.py"), recursive=True)
        if not os.path.relpath(p, root).startswith(("common", "studies"))
    ]
    assert len(recipes) > 40
    # one recipe per data config / kind of model (all of them take a minute)
    for path in recipes:
        name = os.path.relpath(path, root)
        if not (
            name.startswith(("LVIS", "LabelmeVOC", "OwnData"))
            or name == "COCO/faster_rcnn_fpn_72ep.py"
            or name.startswith("DeepForest/")
            and ("aligndet" in name or "shared" in name or "retinanet_nasfpn" in name)
        ):
            continue  # fmt: skip
        lines = describe_run(load_config(path))
        assert lines[0].startswith("train data: ") and "LR " in "\n".join(lines), path


def test_train_and_test_classes_must_agree(caplog):
    from omegaconf import OmegaConf

    from detectron2.data import MetadataCatalog
    from freezedet.engine.summary import check_same_classes

    MetadataCatalog.get("cls_a_train").set(thing_classes=["cat", "dog"])
    MetadataCatalog.get("cls_a_val").set(thing_classes=["dog", "cat"])
    MetadataCatalog.get("cls_b_val").set(thing_classes=["cat", "dog"])
    cfg = OmegaConf.create(
        {"dataloader": {"train": {"dataset": {"names": "cls_a_train"}},
                        "test": {"dataset": {"name": "cls_a_val"}}}}
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"'cls_a_train' has classes \['cat', 'dog'\], .*order"):
        check_same_classes(cfg)
    cfg.dataloader.test.dataset.name = "cls_b_val"
    check_same_classes(cfg)
    MetadataCatalog.get("cls_c_val").set(thing_classes=["car", "bus"])
    cfg.dataloader.test.dataset.name = "cls_c_val"
    logging.getLogger("freezedet").addHandler(caplog.handler)  # setup_logger stops propagation
    try:
        check_same_classes(cfg)
    finally:
        logging.getLogger("freezedet").removeHandler(caplog.handler)
    assert "['car', 'bus']: evaluating on other classes" in caplog.text
