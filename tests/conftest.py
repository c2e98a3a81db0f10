"""Shared fixtures: a tiny synthetic box dataset for fast engine tests (real-data tests live
beside the components that load real data)."""

import logging
import os
import random

import numpy as np
import pytest
import torch
from PIL import Image

import freezedet  # noqa: F401
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from freezedet.data.coco_json import write_coco_json

# The global RNG state every test starts from, whatever ran before it (tests run in random order:
# pytest-randomly, see setup.cfg).
TEST_SEED = 0


@pytest.fixture(autouse=True)
def seed_global_rngs():
    """Seeds Python's ``random``, NumPy's and torch's global generators before every test.

    pytest-randomly reseeds ``random`` and NumPy with its per-run seed but not torch; this fixed
    seed overrides both, so a test draws the same numbers in any order and under any
    ``--randomly-seed``. Session / module fixtures are set up before it: they seed themselves."""
    random.seed(TEST_SEED)
    np.random.seed(TEST_SEED)
    torch.manual_seed(TEST_SEED)


def _loggers():
    return [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]


@pytest.fixture(autouse=True)
def remove_added_logging_handlers():
    """Takes away the logging handlers a test added (detectron2's ``setup_logger``, run by the
    tools and ``setup_run``, attaches a handler to the ``sys.stdout`` of that moment, which pytest
    closes after the test): later tests would otherwise log into a closed stream, an error that
    depends on which tests ran before. pytest's own capture handlers are left to pytest."""
    before = {logger: set(logger.handlers) for logger in _loggers()}
    yield
    for logger in _loggers():
        for handler in set(logger.handlers) - before.get(logger, set()):
            if not type(handler).__module__.startswith("_pytest"):
                logger.removeHandler(handler)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """``make test`` runs ``pytest -q``, which hides the header where pytest-randomly prints its
    seed: repeat it after the results, so a failing order can be replayed."""
    seed = config.getoption("randomly_seed", None)
    if seed is not None:
        terminalreporter.write_line(
            f"tests ran in random order: replay it with -p randomly --randomly-seed={seed}"
        )


def make_synthetic_dataset(root, n=4, size=128, seed=0):
    """Images with 1-3 bright rectangles on textured noise, one class."""
    rng = np.random.RandomState(seed)
    os.makedirs(root, exist_ok=True)
    records = []
    for i in range(n):
        img = (rng.rand(size, size, 3) * 60).astype(np.uint8)
        anns = []
        for _ in range(rng.randint(1, 4)):
            w, h = rng.randint(16, 48, size=2)
            x0, y0 = rng.randint(0, size - w), rng.randint(0, size - h)
            img[y0 : y0 + h, x0 : x0 + w] = rng.randint(150, 255, size=3)
            anns.append(
                {
                    "bbox": [float(x0), float(y0), float(x0 + w), float(y0 + h)],
                    "bbox_mode": BoxMode.XYXY_ABS,
                    "category_id": 0,
                    "iscrowd": 0,
                }
            )
        path = os.path.join(root, f"{i}.png")
        Image.fromarray(img).save(path)
        records.append(
            {"file_name": path, "image_id": i, "height": size, "width": size, "annotations": anns}
        )
    return records


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory):
    """Registers 'synthetic_train' / 'synthetic_val' (same 4 images); returns the names."""
    root = str(tmp_path_factory.mktemp("synthetic"))
    records = make_synthetic_dataset(root)
    for name in ("synthetic_train", "synthetic_val"):
        if name not in DatasetCatalog.list():
            DatasetCatalog.register(name, lambda r=records: [dict(x) for x in r])
            MetadataCatalog.get(name).set(thing_classes=["box"], evaluator_type="coco")
    return "synthetic_train", "synthetic_val"


def write_coco_config(root, n=4):
    """Synthetic images + COCO json + a config file (outside configs/) that trains the DeepForest
    Faster R-CNN recipe on them through ``coco_json_dataset``: usable by subprocess runs."""
    image_root = os.path.join(root, "images")
    records = make_synthetic_dataset(image_root, n=n)
    json_file = os.path.join(root, "ann.json")
    write_coco_json(records, json_file, image_root=image_root, class_names=["box"])
    config = os.path.join(root, "synthetic_coco.py")
    with open(config, "w") as f:
        f.write(f"""from detectron2.config import LazyCall as L
from freezedet.data.coco_json import coco_json_dataset
from freezedet.model_zoo import get_config

_base = get_config("DeepForest/faster_rcnn_fpn.py")
model, dataloader, optimizer = _base.model, _base.dataloader, _base.optimizer
lr_multiplier, train, trunk = _base.lr_multiplier, _base.train, _base.trunk
dataloader.train.dataset = L(coco_json_dataset)(
    name="synth_train", json_file={json_file!r}, image_root={image_root!r})
dataloader.test.dataset = L(coco_json_dataset)(
    name="synth_val", json_file={json_file!r}, image_root={image_root!r}, filter_empty=False)
dataloader.evaluator.dataset_name = "synth_val"
dataloader.train.num_workers = 0
dataloader.test.num_workers = 0
model.roi_heads.batch_size_per_image = 32
model.proposal_generator.post_nms_topk = [200, 100]
optimizer.lr = 0.002
train.seed = 0
train.log_period = 1
""")
    return config


@pytest.fixture(scope="session")
def synthetic_run_opts(synthetic_dataset):
    """Overrides that point a DeepForest recipe at the synthetic dataset with CPU-test sizes."""
    train, val = synthetic_dataset
    return [
        f"dataloader.train.dataset.names={train}",
        f"dataloader.test.dataset.names={val}",
        "dataloader.train.num_workers=0",
        "dataloader.test.num_workers=0",
        "model.roi_heads.batch_size_per_image=32",
        "model.proposal_generator.post_nms_topk=[200,100]",
    ]


@pytest.fixture(scope="session")
def coco_config(tmp_path_factory):
    """Path of a config training on a synthetic COCO json (see write_coco_config)."""
    return write_coco_config(str(tmp_path_factory.mktemp("coco")))


LONG_TAIL_CLASSES = ["tree", "snag", "stump", "person", "vehicle", "object"]
LONG_TAIL_FREQUENCIES = ["f", "c", "r", "f", "c", "r"]


def long_tail_records():
    """Real images with a synthetic long-tailed category set (indices into LONG_TAIL_CLASSES):
    labelme's 3 VOC photos (12 polygon masks: person -> person, bus / car -> vehicle, the rest
    -> object) and the first 3 DeepForest val tiles (image ids 100-102; trees, every 5th tree of
    tiles 100-101 a snag, tree 1 of tile 102 a stump)."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    voc = MetadataCatalog.get("labelme_voc_train").thing_classes
    to_lt = {"person": 3, "bus": 4, "car": 4}
    records = []
    for r in DatasetCatalog.get("labelme_voc_train"):
        annos = [dict(a, category_id=to_lt.get(voc[a["category_id"]], 5)) for a in r["annotations"]]
        records.append(dict(r, annotations=annos))
    for t, r in enumerate(DatasetCatalog.get("deepforest_val")[:3]):
        annos = []
        for i, a in enumerate(r["annotations"]):
            cat = 1 if (t < 2 and i % 5 == 0) else 2 if (t == 2 and i == 1) else 0
            annos.append(dict(a, category_id=cat))
        records.append(dict(r, image_id=100 + t, annotations=annos))
    return records


def _write_long_tail_lvis(root, name, image_ids=None):
    import json

    from freezedet.data.lvis import records_to_lvis

    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    records = long_tail_records()
    if image_ids is not None:
        records = [r for r in records if r["image_id"] in image_ids]
    for r in records:
        link = os.path.join(root, "images", os.path.basename(r["file_name"]))
        if not os.path.exists(link):
            os.symlink(r["file_name"], link)
    data = records_to_lvis(
        records,
        class_names=LONG_TAIL_CLASSES,
        frequencies=LONG_TAIL_FREQUENCIES,
        split_folder="images",
    )
    path = os.path.join(root, name)
    with open(path, "w") as f:
        json.dump(data, f)
    return path


@pytest.fixture(scope="session")
def long_tail_lvis(tmp_path_factory):
    """LVIS-format jsons of :func:`long_tail_records`: ``train`` (all 6 images), ``val`` (tiles
    101-102: a rare, a common and a frequent category), ``image_root``, ``classes``,
    ``frequencies``, the source ``records``."""
    root = str(tmp_path_factory.mktemp("long_tail_lvis"))
    return {
        "train": _write_long_tail_lvis(root, "train.json"),
        "val": _write_long_tail_lvis(root, "val.json", image_ids={101, 102}),
        "image_root": root,
        "classes": LONG_TAIL_CLASSES,
        "frequencies": LONG_TAIL_FREQUENCIES,
        "records": long_tail_records(),
    }


@pytest.fixture
def build_trainer_parts():
    """``build(cfg)`` -> (model, optimizer, trainer): the first steps of
    ``freezedet.engine.train_net.do_train`` (model, optimizer, DDP, trainer over the train
    loader), without hooks or checkpointer, for tests that call ``trainer.train`` themselves."""
    from freezedet import compat
    from freezedet.engine import build_model, build_optimizer, build_trainer
    from freezedet.engine.resumable import ResumableTrainLoader

    def build(cfg):
        model = build_model(cfg)
        optimizer = build_optimizer(cfg, model)
        model = compat.create_ddp_model(model, **cfg.train.get("ddp", {}))
        return model, optimizer, build_trainer(cfg, model, ResumableTrainLoader(cfg), optimizer)

    return build
