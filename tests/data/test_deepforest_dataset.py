"""DeepForest tiles: real counts, region split without overlap, valid boxes, registration."""

import os

import numpy as np
import pytest
from PIL import Image

from detectron2.data import DatasetCatalog, DatasetMapper, MetadataCatalog
from detectron2.data import get_detection_dataset_dicts
from freezedet.data import deepforest as df

CROP2, CROP = list(df.SOURCES)[:2]


@pytest.fixture(scope="module")
def tiles():
    return {s: DatasetCatalog.get(f"deepforest_{s}") for s in ("train", "val", "unlabeled", "all")}


def _intersects(a, b):
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _per_source(records):
    out = {}
    for r in records:
        n_tiles, n_boxes = out.get(r["source_image"], (0, 0))
        out[r["source_image"]] = (n_tiles + 1, n_boxes + len(r["annotations"]))
    return out


def test_counts_per_split(tiles):
    assert _per_source(tiles["train"]) == {CROP2: (28, 378), CROP: (6, 206), "OSBS_029": (1, 61)}
    assert _per_source(tiles["val"]) == {CROP2: (14, 296), CROP: (3, 87), "SOAP_061": (1, 37)}
    assert sum(not r["annotations"] for r in tiles["train"]) == 2
    assert sum(not r["annotations"] for r in tiles["val"]) == 0


def test_source_annotations_parse():
    src = df.deepforest_data_dir()
    expected = {CROP2: ((2299, 2472), 574), CROP: ((1249, 1035), 279)}
    expected.update({"OSBS_029": ((400, 400), 61), "SOAP_061": ((400, 400), 37)})
    for name, (size, n) in expected.items():
        wh, boxes = df.parse_voc_xml(os.path.join(src, name + ".xml"))
        assert (wh, len(boxes)) == (size, n), (name, wh, len(boxes))
        # 1-based inclusive VOC -> 0-based exclusive, inside the image
        assert boxes[:, :2].min() >= 0 and boxes[:, 2].max() <= wh[0] and boxes[:, 3].max() <= wh[1]
        assert (boxes[:, 2:] > boxes[:, :2]).all()


def test_train_and_val_are_disjoint_regions(tiles):
    src = df.deepforest_data_dir()
    for name in (CROP2, CROP):
        train = [r["tile_box"] for r in tiles["train"] if r["source_image"] == name]
        val = [r["tile_box"] for r in tiles["val"] if r["source_image"] == name]
        for t in train:
            for v in val:
                assert not _intersects(t, v), f"{name}: train tile {t} overlaps val tile {v}"
        train_end, val_start = max(t[2] for t in train), min(v[0] for v in val)
        assert val_start - train_end == 128, (name, train_end, val_start)
        # the gap is wider than any crown: no crown reaches into both regions
        _, boxes = df.parse_voc_xml(os.path.join(src, name + ".xml"))
        straddling = (boxes[:, 0] < train_end) & (boxes[:, 2] > val_start)
        assert not straddling.any(), boxes[straddling]
    ids = {"train": {r["image_id"] for r in tiles["train"]}}
    assert not ids["train"] & {r["image_id"] for r in tiles["val"]}
    assert {r["source_image"] for r in tiles["val"]} == {CROP2, CROP, "SOAP_061"}


def test_tiles_and_boxes_are_valid(tiles):
    records = tiles["train"] + tiles["val"]
    ids = [r["image_id"] for r in records]
    assert len(set(ids)) == len(ids), "image ids must be unique"
    for r in records:
        assert set(r) >= {"file_name", "image_id", "height", "width", "annotations"}
        assert r["height"] == r["width"] == 400
        with Image.open(r["file_name"]) as im:
            assert im.size == (400, 400) and im.mode == "RGB", (r["file_name"], im.size, im.mode)
        for a in r["annotations"]:
            x0, y0, x1, y1 = a["bbox"]
            assert 0 <= x0 < x1 <= 400 and 0 <= y0 < y1 <= 400, a["bbox"]
            assert x1 - x0 >= 4 and y1 - y0 >= 4, a["bbox"]
            assert (a["category_id"], a["iscrowd"], a["bbox_mode"]) == (0, 0, 0)
    assert len({r["file_name"] for r in tiles["all"]}) == len(tiles["all"])


def test_tile_pixels_match_source(tiles):
    record = next(r for r in tiles["val"] if r["source_image"] == CROP)
    x0, y0, x1, y1 = record["tile_box"]
    with Image.open(os.path.join(df.deepforest_data_dir(), CROP + ".png")) as im:
        expected = np.asarray(im.convert("RGB"))[y0:y1, x0:x1]
    with Image.open(record["file_name"]) as im:
        np.testing.assert_array_equal(np.asarray(im), expected)


def test_ids_are_stable_and_mapper_reads_tiles(tiles):
    again = df.load_deepforest("train")
    assert [r["image_id"] for r in again] == [r["image_id"] for r in tiles["train"]]
    record = max(tiles["train"], key=lambda r: len(r["annotations"]))
    mapper = DatasetMapper(is_train=True, augmentations=[], image_format="RGB")
    out = mapper(dict(record))
    assert tuple(out["image"].shape) == (3, 400, 400)
    assert len(out["instances"]) == len(record["annotations"]) == 61


def test_unlabeled_all_and_subsets(tiles):
    n_train, n_val = len(tiles["train"]), len(tiles["val"])
    assert all("annotations" not in r for r in tiles["unlabeled"] + tiles["all"])
    assert len(tiles["unlabeled"]) == n_train + 1  # + SOAP_031
    assert len(tiles["all"]) == n_train + n_val + 1
    assert len(get_detection_dataset_dicts("deepforest_all")) == n_train + n_val + 1
    subsets = [DatasetCatalog.get(f"deepforest_train_{p}pct") for p in (10, 25, 50)]
    assert [len(s) for s in subsets] == [4, 9, 18]
    ids = [{r["image_id"] for r in s} for s in subsets]
    assert ids[0] < ids[1] < ids[2] < {r["image_id"] for r in tiles["train"]}  # nested
    name = df.register_deepforest_subset(0.25, seed=3)
    assert name == "deepforest_train_25pct_seed3"
    other = {r["image_id"] for r in DatasetCatalog.get(name)}
    assert len(other) == 9 and other != ids[1]
    assert MetadataCatalog.get(name).thing_classes == ["tree"]


def test_registration_is_idempotent_and_cheap():
    names = [n for n in DatasetCatalog.list() if n.startswith("deepforest_")]
    expected = {"deepforest_train", "deepforest_val", "deepforest_all", "deepforest_unlabeled"}
    expected |= {f"deepforest_train_{p}pct" for p in (10, 25, 50)}
    assert expected <= set(names)
    df.register_deepforest()
    assert [n for n in DatasetCatalog.list() if n.startswith("deepforest_")] == names
    for n in expected:
        meta = MetadataCatalog.get(n)
        assert (meta.thing_classes, meta.evaluator_type) == (["tree"], "coco")


def _write_voc(path, size, boxes, names=None):
    objs = "".join(
        f"<object><name>{(names or ['Tree'] * len(boxes))[i]}</name><bndbox><xmin>{b[0]}</xmin>"
        f"<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for i, b in enumerate(boxes)
    )
    path.write_text(
        f"<annotation><size><width>{size[0]}</width><height>{size[1]}</height></size>"
        f"{objs}</annotation>"
    )


@pytest.fixture
def fake_source(tmp_path, monkeypatch):
    """A fake deepforest/data folder: 1200x400 region images, 400x400 small ones."""
    src = tmp_path / "data"
    src.mkdir()
    rng = np.random.RandomState(0)
    for name, role in df.SOURCES.items():
        size = (1200, 400) if role == "region" else (400, 400)
        Image.fromarray(rng.randint(0, 255, (size[1], size[0], 3), np.uint8)).save(
            src / f"{name}.png"
        )
        if role != "unlabeled":
            _write_voc(src / f"{name}.xml", size, [])
    monkeypatch.setattr(df, "deepforest_data_dir", lambda: str(src))
    return src


def test_tiling_rules_on_synthetic_source(fake_source, tmp_path):
    # VOC 1-based: [11, 11, 50, 50] is [10, 10, 50, 50]; [191, 11, 230, 50] crosses x=200:
    # 25 % left of it (dropped there), 75 % right (kept); [1001, 301, 1100, 400] is val
    boxes = [[11, 11, 50, 50], [191, 11, 230, 50], [1001, 301, 1100, 400], [301, 1, 302, 40]]
    _write_voc(fake_source / f"{CROP2}.xml", (1200, 400), boxes, ["Tree", "Dead", "Alive", "Tree"])
    out = df.tile_dataset(tile_size=200, max_empty_tiles=1, cache_dir=str(tmp_path / "c"))
    crop2 = {s: [r for r in out[s] if r["source_image"] == CROP2] for s in ("train", "val")}
    # val region: 300 px wide at x 900; train region ends 128 px earlier, at 772
    assert sorted({r["tile_box"][0] for r in crop2["val"]}) == [900, 1000]
    with_boxes = {r["tile_box"]: [a["bbox"] for a in r["annotations"]] for r in crop2["train"]}
    with_boxes = {k: v for k, v in with_boxes.items() if v}
    assert with_boxes == {(0, 0, 200, 200): [[10.0, 10.0, 50.0, 50.0]],
                          (200, 0, 400, 200): [[0.0, 10.0, 30.0, 50.0]]}  # fmt: skip
    assert len(crop2["train"]) == 3  # 2 with boxes + 1 empty (max_empty_tiles=1); 1 px box gone
    val_boxes = {r["tile_box"]: [a["bbox"] for a in r["annotations"]] for r in crop2["val"]}
    assert val_boxes[(1000, 200, 1200, 400)] == [[0.0, 100.0, 100.0, 200.0]]
    assert val_boxes[(900, 200, 1100, 400)] == [[100.0, 100.0, 200.0, 200.0]]
    # small images are tiled too when tiles are smaller than they are
    assert sum(r["source_image"] == "SOAP_031" for r in out["unlabeled"]) == 4


def test_bad_source_files_are_named(fake_source, tmp_path):
    (fake_source / f"{CROP2}.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=f"{CROP2}.png: cannot read the image"):
        df.tile_dataset(cache_dir=str(tmp_path / "c"))
    Image.new("RGB", (1200, 300)).save(fake_source / f"{CROP2}.png")
    with pytest.raises(ValueError, match=f"{CROP2}.png is 1200x300 px but .* says 1200x400"):
        df.tile_dataset(cache_dir=str(tmp_path / "c"))
    (fake_source / f"{CROP2}.xml").unlink()
    with pytest.raises(FileNotFoundError, match=f"{CROP2}.xml does not exist"):
        df.tile_dataset(cache_dir=str(tmp_path / "c"))


def test_bad_voc_xml_is_named(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<annotation><size><width>4</width></size>")
    with pytest.raises(ValueError, match="bad.xml: not a valid Pascal VOC"):
        df.parse_voc_xml(str(bad))
    _write_voc(bad, (10, 10), [[1, 1, 5, 5]], ["Bird"])
    with pytest.raises(ValueError, match="bad.xml: .*class 'Bird'"):
        df.parse_voc_xml(str(bad))
