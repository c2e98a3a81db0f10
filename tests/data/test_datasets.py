"""Real-data registration: DeepForest tiles, labelme masks, COCO json from a config."""

import json

import numpy as np
import pytest
from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog
from freezedet.data import check_coco_json, coco_json_dataset
from freezedet.data.deepforest import parse_voc_xml, subset


@pytest.fixture(scope="module")
def tiles():
    return {s: DatasetCatalog.get(f"deepforest_{s}") for s in ("train", "val", "unlabeled", "all")}


def _rect(r):
    x, y = r["tile_origin"]
    return x, y, x + r["width"], y + r["height"]


def test_deepforest_counts_and_boxes(tiles):
    train, val = tiles["train"], tiles["val"]
    assert len(train) == 45 and len(val) == 18, (len(train), len(val))
    n_train = sum(len(r["annotations"]) for r in train)
    n_val = sum(len(r["annotations"]) for r in val)
    assert n_train == 898 and n_val == 418, (n_train, n_val)
    ids = [r["image_id"] for r in train + val]
    assert len(set(ids)) == len(ids), "image ids must be unique"
    for r in train + val:
        with Image.open(r["file_name"]) as im:
            assert im.size == (r["width"], r["height"]) == (400, 400)
        for a in r["annotations"]:
            x0, y0, x1, y1 = a["bbox"]
            assert 0 <= x0 < x1 <= r["width"] and 0 <= y0 < y1 <= r["height"], a["bbox"]
            assert x1 - x0 >= 4 and y1 - y0 >= 4
    assert MetadataCatalog.get("deepforest_train").thing_classes == ["tree"]


def test_deepforest_train_and_val_do_not_overlap(tiles):
    for t in tiles["train"]:
        for v in tiles["val"]:
            if t["source_image"] != v["source_image"]:
                continue
            a, b = _rect(t), _rect(v)
            overlap = min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])
            assert not overlap, f"train tile {a} overlaps val tile {b} of {t['source_image']}"
    train_sources = {r["source_image"] for r in tiles["train"]}
    assert "SOAP_061" not in train_sources and "OSBS_029" in train_sources


def test_deepforest_unlabeled_and_subsets(tiles):
    assert all("annotations" not in r for r in tiles["unlabeled"] + tiles["all"])
    assert len(tiles["unlabeled"]) == len(tiles["train"]) + 1  # + SOAP_031
    assert len(tiles["all"]) == len(tiles["train"]) + len(tiles["val"]) + 1
    s10 = DatasetCatalog.get("deepforest_train_10pct")
    assert len(s10) == round(0.1 * len(tiles["train"]))
    assert [r["image_id"] for r in s10] == [r["image_id"] for r in subset(tiles["train"], 0.1)]
    assert {r["image_id"] for r in s10} <= {r["image_id"] for r in tiles["train"]}


def test_voc_parse_error_names_file(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<annotation><size><width>4</width></size>")
    with pytest.raises(ValueError, match="bad.xml"):
        parse_voc_xml(str(bad))


def test_labelme_masks_background_dropped():
    dicts = DatasetCatalog.get("labelme_voc_train")
    meta = MetadataCatalog.get("labelme_voc_train")
    assert len(dicts) == 3
    assert "_background_" not in meta.thing_classes and len(meta.thing_classes) == 20
    anns = [a for d in dicts for a in d["annotations"]]
    assert len(anns) == 12
    assert all(isinstance(a["segmentation"], list) and len(a["segmentation"][0]) >= 6 for a in anns)
    assert all(0 <= a["category_id"] < 20 for a in anns)


def _write_coco(tmp_path, n_images=2):
    img_dir = tmp_path / "images"
    img_dir.mkdir(exist_ok=True)
    images, anns = [], []
    for i in range(n_images):
        Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(img_dir / f"{i}.png")
        images.append({"id": i, "file_name": f"{i}.png", "height": 32, "width": 48})
        anns.append(
            {
                "id": i + 1,
                "image_id": i,
                "bbox": [2, 3, 10, 12],
                "category_id": 7,
                "iscrowd": 0,
                "area": 120,
            }
        )
    js = tmp_path / "ann.json"
    js.write_text(
        json.dumps(
            {"images": images, "annotations": anns, "categories": [{"id": 7, "name": "thing"}]}
        )
    )
    return str(js), str(img_dir)


def test_coco_json_dataset_registers_and_loads(tmp_path):
    js, root = _write_coco(tmp_path)
    dicts = coco_json_dataset(name="tmp_coco_ok", json_file=js, image_root=root)
    assert len(dicts) == 2 and dicts[0]["annotations"][0]["category_id"] == 0
    assert MetadataCatalog.get("tmp_coco_ok").thing_classes == ["thing"]
    # idempotent with the same paths, an error with others
    assert len(coco_json_dataset(name="tmp_coco_ok", json_file=js, image_root=root)) == 2
    with pytest.raises(ValueError, match="already registered"):
        coco_json_dataset(name="tmp_coco_ok", json_file=js, image_root=str(tmp_path))


def test_coco_json_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        check_coco_json(str(tmp_path / "nope.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not valid JSON"):
        check_coco_json(str(bad))
    bad.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(KeyError, match="missing top-level key 'categories'"):
        check_coco_json(str(bad))
    bad.write_text(json.dumps({"images": [{"id": 1}], "annotations": [], "categories": []}))
    with pytest.raises(KeyError, match=r"images\[0\] lacks \['file_name'\]"):
        check_coco_json(str(bad))
