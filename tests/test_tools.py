"""Every tool that takes a detector config, end to end, on a shipped mask recipe (LabelmeVOC) and
on the own-data config of docs/getting_started.md, run from a directory outside the repository
on real photos (labelme's VOC example: a COCO json with polygon masks, as a user's own data
would be)."""

import json
import os
import re
import runpy
import sys

import pytest

from detectron2.config import instantiate
from freezedet.data.labelme import labelme_dir
from freezedet.engine import describe_lr_schedule, load_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(REPO, "tools")
MASK_RECIPE = os.path.join(REPO, "configs", "LabelmeVOC", "mask_rcnn_fpn.py")
# CPU-test sizes; the photos are ~500 x 375 px
SMALL = [
    "train.max_iter=1",
    "dataloader.train.num_workers=0",
    "dataloader.test.num_workers=0",
    "model.roi_heads.batch_size_per_image=32",
    "model.proposal_generator.post_nms_topk=[200,100]",
    "model.roi_heads.box_predictor.test_score_thresh=0.3",
]
OWN_SMALL = SMALL + [
    "model.roi_heads.num_classes=21",  # labelme's json: _background_ + 20 VOC classes
    "dataloader.image_size=320",  # test: 320, train: 256-384
]


GETTING_STARTED = os.path.join(REPO, "docs", "getting_started.md")


def _doc_block(heading: str) -> str:
    with open(GETTING_STARTED) as f:
        text = f.read()
    section = text[text.index(heading) :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture(scope="session")
def own_data_dir(tmp_path_factory):
    """A directory outside the repository holding docs/getting_started.md's own-data example as
    ``mydata.py``, its paths pointed at labelme's photos and json."""
    root = labelme_dir()
    json_file = os.path.join(root, "annotations.json")
    if not os.path.isfile(json_file):
        pytest.skip(f"labelme's example data is missing ({json_file}); run tools/fetch_data.py")
    code = _doc_block("## Your own data")
    for placeholder in ("/data/mydata/train.json", "/data/mydata/val.json"):
        assert placeholder in code, placeholder
        code = code.replace(placeholder, json_file)
    code = code.replace("/data/mydata/images", root)
    out = tmp_path_factory.mktemp("user_project")
    assert not str(out).startswith(REPO)
    (out / "mydata.py").write_text(code)
    return out


def _tool(name, argv, monkeypatch):
    """Run tools/<name> as ``python tools/<name> argv...`` would, in this process, with
    ``FREEZEDET_DEBUG=1`` so that an error propagates with its type; returns the tool's globals."""
    path = os.path.join(TOOLS, name)
    monkeypatch.setattr(sys, "argv", [path, *argv])
    monkeypatch.syspath_prepend(TOOLS)  # as `python tools/<name>` does
    monkeypatch.setenv("FREEZEDET_DEBUG", "1")
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as done:  # the tools end with sys.exit(run_tool(main))
        assert done.code in (0, None), f"{name} {argv} exited with {done.code}"
    return runpy.run_path(path, run_name="freezedet_tool")


def _results(out):
    with open(os.path.join(out, "eval_results.json")) as f:
        return json.load(f)


def test_documented_own_data_config_from_outside_the_repository(own_data_dir, monkeypatch):
    """tools/train_net.py trains and evaluates on the own-data example, --eval-only reloads it,
    tools/demo.py (which crashed on such configs after evaluation) draws its predictions."""
    monkeypatch.chdir(own_data_dir)
    _tool("train_net.py", ["--config-file", "mydata.py", *OWN_SMALL], monkeypatch)
    # derived from the config's file name and its trunk (the example: `trunk = _recipe.trunk`)
    out = os.path.join("output", "mydata", "effl0_frozen")
    assert set(_results(out)["bbox"]) >= {"AP", "AP50"}
    log = open(os.path.join(out, "log.txt")).read()
    assert "train data: mydata_train (json_file=" in log
    assert "max_dets_per_image=auto: 100 detections per image" in log
    weights = os.path.join(out, "model_final.pth")
    evaluated = os.path.join("output", "mydata_eval")
    _tool(
        "train_net.py",
        ["--config-file", "mydata.py", "--eval-only", f"train.init_checkpoint={weights}"]
        + [f"train.output_dir={evaluated}", *OWN_SMALL],
        monkeypatch,
    )
    assert "AP" in _results(evaluated)["bbox"]
    demo = os.path.join("output", "mydata_demo")
    _tool(
        "demo.py",
        ["--config-file", "mydata.py", f"train.output_dir={demo}", *OWN_SMALL],
        monkeypatch,
    )
    assert os.path.isfile(os.path.join(demo, "demo_predictions.png"))
    assert "AP" in json.load(open(os.path.join(demo, "summary.json")))


def test_train_net_and_demo_on_the_shipped_mask_recipe(tmp_path, monkeypatch):
    demo = str(tmp_path / "demo")
    _tool(
        "demo.py", ["--config-file", MASK_RECIPE, f"train.output_dir={demo}", *SMALL], monkeypatch
    )
    assert os.path.isfile(os.path.join(demo, "demo_predictions.png"))
    assert {"bbox", "segm"} <= set(_results(demo))
    weights = os.path.join(demo, "model_final.pth")
    evaluated = str(tmp_path / "eval")
    _tool(
        "train_net.py",
        ["--config-file", MASK_RECIPE, "--eval-only", f"train.init_checkpoint={weights}"]
        + [f"train.output_dir={evaluated}", *SMALL],
        monkeypatch,
    )
    assert {"bbox", "segm"} <= set(_results(evaluated))


@pytest.mark.parametrize("which", ["mask recipe", "own data"])
def test_visualize_analyze_export_tools(which, own_data_dir, tmp_path, monkeypatch, capsys):
    if which == "own data":
        monkeypatch.chdir(own_data_dir)
        config, opts = "mydata.py", OWN_SMALL
    else:
        config, opts = MASK_RECIPE, SMALL
    # visualize_data: polygon masks drawn (it crashed on them), class names from the dataset
    cli = _tool("visualize_data.py", ["--config-file", config, "--num", "2",
                                      "--output", str(tmp_path / "vis"), *opts], monkeypatch)  # fmt: skip
    assert len(os.listdir(tmp_path / "vis")) == 2
    args = cli["parse_args"](["--config-file", config, "--output", str(tmp_path), *opts])
    dicts, mapper, metadata = cli["_from_config"](args)
    assert "person" in metadata.thing_classes and mapper.use_instance_mask == (which != "own data")
    # analyze_model: parameters per component, and FLOPs (Mask R-CNN's take 40 s: box model only)
    size = ["--input-size", "128", "128"] if which == "own data" else []
    _tool("analyze_model.py", ["--config-file", config, *size], monkeypatch)
    printed = capsys.readouterr().out
    assert re.search(r"\| roi_heads +\| [\d.]+M", printed), printed
    assert bool(re.search(r"GFLOPs at 128x128: .*roi_heads", printed)) == bool(size), printed
    # export_heads: only for SharedTrunkDetectors; any other config is a clear error
    with pytest.raises(ValueError, match="has no heads to export"):
        _tool("export_heads.py", ["--config-file", config, "--checkpoint", "x.pth"], monkeypatch)


def test_own_data_recipe_needs_its_files():
    cfg = load_config("OwnData/faster_rcnn_fpn.py")
    with pytest.raises(ValueError, match=r"'mydata_train'\): json_file and image_root not set"):
        instantiate(cfg.dataloader.train.dataset)


def test_documented_schedule_example_is_what_the_summary_prints():
    text = open(GETTING_STARTED).read()
    quoted = re.search(r"`(LR 0\.01 × warmup over the first 300 iterations.*?);", text, re.S)
    cfg = load_config("OwnData/faster_rcnn_fpn.py", ["train.max_iter=3000"])
    line = describe_lr_schedule(instantiate(cfg.lr_multiplier), 3000, cfg.optimizer.lr)
    assert line.startswith(" ".join(quoted.group(1).split())), line
