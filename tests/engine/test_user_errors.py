"""Input errors (bad data, config, arguments) are one paragraph on stderr and exit status 2,
without a traceback; --debug / FREEZEDET_DEBUG=1 show it; bugs keep theirs. One case per row of
README.md's "Bad input" table that is an error."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from detectron2.structures import BoxMode
from freezedet.utils.errors import UserError, UserValueError, call_main, format_user_error

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _paragraph(capsys, fn, *args, expect=()):
    """Run ``fn(*args)`` under the tools' wrapper; returns its stderr, checked to be one
    paragraph (plus the --debug hint) with status 2 and every text of ``expect``."""
    assert call_main(fn, *args, prog="freezedet", debug=False) == 2
    log = capsys.readouterr().err  # log lines of the run, then the error
    assert "freezedet: error: " in log and "Traceback" not in log, log
    err = log[log.index("freezedet: error: ") :]
    assert len(err.strip().splitlines()) == 2 and "--debug or FREEZEDET_DEBUG=1" in err, err
    for text in expect:
        assert text in err, (text, err)
    return err


@pytest.fixture
def own_log_handlers():
    """Handlers that a run's setup_logger adds write to this test's captured stderr, which is
    closed afterwards: remove them, so later tests do not log into a closed stream."""
    import logging

    names = ("detectron2", "freezedet", "fvcore", "d2")
    before = {n: list(logging.getLogger(n).handlers) for n in names}
    yield
    for n in names:
        logger = logging.getLogger(n)
        for h in [h for h in logger.handlers if h not in before[n]]:
            logger.removeHandler(h)


def _image(path, size=(32, 24)):
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (size[1], size[0], 3), np.uint8)).save(
        path
    )
    return str(path)


def _coco(tmp_path, name="ann.json", files=("a.png",), size=(32, 24), **changes):
    images = [{"id": i + 1, "file_name": f, "width": size[0], "height": size[1]}
              for i, f in enumerate(files)]  # fmt: skip
    anns = [{"id": i + 1, "image_id": i + 1, "bbox": [2, 2, 8, 8], "category_id": 1, "area": 64,
             "iscrowd": 0} for i in range(len(files))]  # fmt: skip
    data = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "thing"}]}
    data.update(changes)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def _records(path, w=32, h=24):
    box = {"bbox": [2, 2, 10, 10], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0}
    return [{"file_name": path, "image_id": 1, "width": w, "height": h, "annotations": [box]}]


def _raise(trace):
    from torch.multiprocessing import ProcessRaisedException

    raise ProcessRaisedException(trace.replace("freezedet.utils.errors.", ""), 1, 123)


def test_wrapper_debug_and_bugs(capsys, monkeypatch):
    def bad():
        raise UserValueError("config x.py: key a.b\n  is wrong; set a.b=1.")

    err = _paragraph(capsys, bad, expect=["config x.py: key a.b is wrong; set a.b=1."])
    assert format_user_error(UserValueError("m"), "freezedet").splitlines()[0] == (
        "freezedet: error: m"
    )
    with pytest.raises(UserValueError):
        call_main(bad, prog="freezedet", debug=True)
    monkeypatch.setenv("FREEZEDET_DEBUG", "1")
    with pytest.raises(UserValueError):
        call_main(bad, prog="freezedet")
    monkeypatch.delenv("FREEZEDET_DEBUG")

    def bug():
        raise ValueError("a real bug")

    with pytest.raises(ValueError, match="a real bug"):  # not a UserError: traceback kept
        call_main(bug, prog="freezedet")
    # raised in a process that --num-gpus started: the parent gets the worker's traceback text
    from torch.multiprocessing import ProcessRaisedException

    trace = (
        "\n\n-- Process 1 terminated with the following error:\nTraceback (most recent call "
        'last):\n  File "x.py", line 1, in f\nfreezedet.utils.errors.UserKeyError: config c.py:'
        " no key 'a'\n"
    )

    def spawned():
        raise ProcessRaisedException(trace, 1, 123)

    _paragraph(capsys, spawned, expect=["freezedet: error: config c.py: no key 'a'"])
    with pytest.raises(ProcessRaisedException):  # a bug in a worker keeps its traceback
        call_main(_raise, trace.replace("UserKey", "Key"), prog="freezedet")
    assert call_main(lambda: 3, prog="freezedet") == 3 and call_main(dict, prog="x") == 0
    assert err.count("\n") == 2


def test_image_rows(tmp_path, capsys):
    """Missing image; truncated JPEG; size differing from the json's; 16-bit image; no usable
    image."""
    from freezedet.data.coco_json import coco_json_dataset
    from freezedet.data.validate import check_records

    _image(tmp_path / "a.png")
    js = _coco(tmp_path, files=("a.png", "gone.png"))
    args = dict(name="ue_missing", json_file=js, image_root=str(tmp_path))
    _paragraph(capsys, lambda: coco_json_dataset(**args),
               expect=["gone.png does not exist", "skip_bad_images=True"])  # fmt: skip
    jpg = str(tmp_path / "t.jpg")
    Image.open(tmp_path / "a.png").save(jpg, quality=90)
    data = open(jpg, "rb").read()
    open(jpg, "wb").write(data[: len(data) // 2])
    cache = str(tmp_path / "cache")
    _paragraph(capsys, lambda: check_records(_records(jpg), name="ue", cache_dir=cache),
               expect=["t.jpg cannot be decoded", "truncated"])  # fmt: skip
    a = str(tmp_path / "a.png")
    _paragraph(capsys, lambda: check_records(_records(a, 30, 24), name="ue", cache_dir=cache),
               expect=["a.png is 32x24", "say 30x24", "Correct width / height"])  # fmt: skip
    deep = str(tmp_path / "deep.png")
    Image.fromarray(np.full((24, 32), 3000, np.uint16)).save(deep)
    _paragraph(capsys, lambda: check_records(_records(deep), name="ue", cache_dir=cache),
               expect=["deep.png is not 8-bit", "high_bit_depth"])  # fmt: skip
    _paragraph(capsys, lambda: check_records(_records(jpg), name="ue", cache_dir=cache,
                                             skip_bad_images=True),
               expect=["dataset 'ue' has no usable image"])  # fmt: skip


def test_image_read_later_in_a_worker(tmp_path, capsys):
    """An image that fails when read later (changed after the check): the DataLoader worker's
    traceback is not printed, the file and image id are."""
    from detectron2.config import LazyCall as L
    from detectron2.data import DatasetMapper, build_detection_test_loader
    from freezedet.data.validate import check_records
    from freezedet.engine import instantiate_loader

    path = _image(tmp_path / "late.jpg".replace(".jpg", ".png"))
    records = check_records(_records(path), name="ue_late", verify_images=False)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\nbroken")
    mapper = L(DatasetMapper)(is_train=False, augmentations=[], image_format="RGB")
    loader = instantiate_loader(
        L(build_detection_test_loader)(mapper=mapper, num_workers=1), dataset=records
    )
    err = _paragraph(capsys, lambda: next(iter(loader)), expect=["late.png", "image_id 1"])
    assert "DataLoader worker" not in err and "verify_images=True" in err


def test_json_rows(tmp_path, capsys):
    """json missing / not JSON / missing key, image folder missing, the same name with other
    files, an unknown category_id, an OwnData recipe without its files."""
    from freezedet.data.coco_json import coco_json_dataset

    _image(tmp_path / "a.png")
    root = str(tmp_path)

    def load(name, json_file, image_root=root):
        return lambda: coco_json_dataset(name=name, json_file=json_file, image_root=image_root)

    _paragraph(capsys, load("ue_j1", str(tmp_path / "no.json")), expect=["no.json' does not"])
    (tmp_path / "bad.json").write_text("{nope")
    _paragraph(capsys, load("ue_j2", str(tmp_path / "bad.json")), expect=["bad.json: not valid"])
    js = _coco(tmp_path, name="nocat.json", categories=None)
    _paragraph(capsys, load("ue_j3", _coco(tmp_path, name="k.json", images=[{"id": 1}])),
               expect=["k.json: images[0] lacks ['file_name', 'height', 'width']"])  # fmt: skip
    _paragraph(capsys, load("ue_j4", _coco(tmp_path), str(tmp_path / "nodir")),
               expect=["image_root", "nodir", "does not exist"])  # fmt: skip
    assert len(coco_json_dataset(name="ue_j5", json_file=_coco(tmp_path), image_root=root)) == 1
    _paragraph(capsys, load("ue_j5", js), expect=["'ue_j5' is already registered", "another"])
    cats = _coco(tmp_path, name="cats.json", categories=[{"id": 5, "name": "x"}])
    _paragraph(capsys, load("ue_j6", cats),
               expect=["cats.json", "category_id 1", "Add the missing categories"])  # fmt: skip
    _paragraph(capsys, load("ue_j7", None), expect=["json_file not set", "dataloader.train"])


def test_bad_evaluation_ground_truth_stops_before_training(
    synthetic_run_opts, tmp_path, capsys, own_log_handlers
):
    """A degenerate box in the evaluation json: an error at the start of the run (it used to come
    after training had finished), through tools/train_net.py's main."""
    from freezedet.engine import argument_parser, main

    _image(tmp_path / "a.png")
    js = _coco(tmp_path, name="val.json", annotations=[
        {"id": 9, "image_id": 1, "bbox": [20, 2, -8, 8], "category_id": 1, "area": 64,
         "iscrowd": 0}])  # fmt: skip
    config = tmp_path / "badgt.py"
    config.write_text(
        "from detectron2.config import LazyCall as L\n"
        "from freezedet.data.coco_json import coco_json_dataset\n"
        "from freezedet.model_zoo import get_config\n"
        "_base = get_config('DeepForest/faster_rcnn_fpn.py')\n"
        "model, dataloader, optimizer = _base.model, _base.dataloader, _base.optimizer\n"
        "lr_multiplier, train, trunk = _base.lr_multiplier, _base.train, _base.trunk\n"
        "dataloader.test.dataset = L(coco_json_dataset)(name='ue_badgt_val', "
        f"json_file={js!r}, image_root={str(tmp_path)!r}, filter_empty=False)\n"
        "dataloader.evaluator.dataset_name = 'ue_badgt_val'\n"
    )
    out = tmp_path / "run"
    train_opts = [o for o in synthetic_run_opts if not o.startswith("dataloader.test.")]
    args = argument_parser().parse_args(
        ["--config-file", str(config), "train.init_checkpoint=", f"train.output_dir={out}",
         *train_opts, "train.max_iter=2"]
    )  # fmt: skip
    _paragraph(capsys, main, args, expect=["val.json: 1 ground-truth annotation", "id 9"])
    assert not (out / "metrics.json").exists(), "training started"


def test_config_and_weights_rows(synthetic_run_opts, tmp_path, capsys, own_log_handlers):
    """Unknown override key, num_classes against the data, --eval-only without weights, a
    missing init_checkpoint, the same classes in another order."""
    from omegaconf import OmegaConf

    from detectron2.data import MetadataCatalog
    from freezedet.engine import argument_parser, load_config, main
    from freezedet.engine.summary import check_same_classes
    from freezedet.model_zoo import get_config_file

    config = get_config_file("DeepForest/faster_rcnn_fpn.py")
    _paragraph(capsys, load_config, config, ["train.max_iters=3"],
               expect=["has no key 'train.max_iters'", "train.max_iter"])  # fmt: skip

    def run(*flags, opts=()):
        out = f"train.output_dir={tmp_path / 'run'}"
        base = ["train.init_checkpoint=", out, *synthetic_run_opts, "train.max_iter=1"]
        return argument_parser().parse_args([*flags, "--config-file", config, *base, *opts])

    _paragraph(capsys, main, run(opts=["model.roi_heads.num_classes=3"]),
               expect=["num_classes=3 but dataset", "set model.roi_heads.num_classes=1"])  # fmt: skip
    _paragraph(capsys, main, run("--eval-only"), expect=["--eval-only without weights"])
    _paragraph(capsys, main, run("--eval-only", opts=["train.init_checkpoint=/no/w.pth"]),
               expect=["checkpoint '/no/w.pth' does not exist"])  # fmt: skip
    MetadataCatalog.get("ue_order_train").set(thing_classes=["cat", "dog"])
    MetadataCatalog.get("ue_order_val").set(thing_classes=["dog", "cat"])
    cfg = OmegaConf.create(
        {
            "dataloader": {
                "train": {"dataset": {"names": "ue_order_train"}},
                "test": {"dataset": {"name": "ue_order_val"}},
            }
        }
    )
    _paragraph(capsys, check_same_classes, cfg, expect=["another order"])  # fmt: skip


def test_tool_entry_point_and_debug(tmp_path, monkeypatch):
    """tools/evaluate.py as a user runs it: status 2 and one paragraph; --debug (taken out of
    the arguments by the wrapper) re-raises with the traceback."""
    from freezedet.evaluation.results_file import main
    from freezedet.utils.errors import UserFileNotFoundError, run_tool

    gt = _coco(tmp_path)
    argv = ["--gt", gt, "--results", str(tmp_path / "none.json")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("FREEZEDET_DEBUG", None)
    tool = os.path.join(REPO, "tools", "evaluate.py")
    r = subprocess.run([sys.executable, tool, *argv], capture_output=True, text=True, env=env,
                       timeout=300)  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("freezedet: error: results file ") and "none.json" in r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    monkeypatch.setattr(sys, "argv", [tool, *argv, "--debug"])
    monkeypatch.delenv("FREEZEDET_DEBUG", raising=False)
    with pytest.raises(UserFileNotFoundError, match="none.json does not exist"):
        run_tool(main)
    assert os.environ.pop("FREEZEDET_DEBUG") == "1" and "--debug" not in sys.argv


def test_predict_and_export_raise_user_errors_and_keep_bugs(tmp_path, monkeypatch):
    """tools/predict.py and tools/export.py leave input errors to the wrapper (a UserError, not
    a status they print themselves) and do not turn a bug's ValueError into status 2."""
    from freezedet.inference import export_cli, predict_images
    from freezedet.utils.errors import UserFileNotFoundError

    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(image)
    missing = str(tmp_path / "no_run")
    with pytest.raises(UserFileNotFoundError, match="no_run"):
        predict_images.main(["--run", missing, "--input", str(image), "--output", str(tmp_path)])
    with pytest.raises(UserFileNotFoundError, match="no_run"):
        export_cli.main(["--run", missing, "--output", str(tmp_path)])

    def bug(*args, **kwargs):
        raise ValueError("a real bug")

    monkeypatch.setattr(predict_images.Predictor, "from_config", bug)
    with pytest.raises(ValueError, match="a real bug"):
        predict_images.main(["--run", missing, "--input", str(image), "--output", str(tmp_path)])


def test_predict_tool_accepts_debug(tmp_path):
    """``--debug`` is an argument of tools/predict.py (parsed before the wrapper takes it out):
    the input error's traceback, not argparse's "unrecognized arguments"."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("FREEZEDET_DEBUG", None)
    tool = os.path.join(REPO, "tools", "predict.py")
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(image)
    argv = ["--run", str(tmp_path / "no_run"), "--input", str(image), "--output", str(tmp_path)]
    r = subprocess.run([sys.executable, tool, *argv, "--debug"], capture_output=True, text=True,
                       env=env, timeout=300)  # fmt: skip
    assert r.returncode == 1 and "unrecognized arguments" not in r.stderr, r.stderr[-2000:]
    assert "Traceback" in r.stderr and "UserFileNotFoundError" in r.stderr, r.stderr[-2000:]
    assert "no_run" in r.stderr.strip().splitlines()[-1], r.stderr[-2000:]
