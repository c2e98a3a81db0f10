"""Generic COCO json datasets from a config: loading, re-registration, clear errors."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from detectron2.config import LazyCall as L
from detectron2.config import instantiate
from detectron2.data import MetadataCatalog
from detectron2.structures import BoxMode
from freezedet.data.coco_json import check_coco_json, coco_json_dataset


def _write_coco(root, n_images=3, annotated=2):
    """n_images 32x48 PNGs, the first ``annotated`` with one box of category id 7."""
    img_dir = root / "images"
    img_dir.mkdir(exist_ok=True)
    images, anns = [], []
    for i in range(n_images):
        Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(img_dir / f"{i}.png")
        images.append({"id": 10 + i, "file_name": f"{i}.png", "height": 32, "width": 48})
        if i < annotated:
            anns.append({"id": i + 1, "image_id": 10 + i, "bbox": [2, 3, 10, 12],
                         "category_id": 7, "iscrowd": 0, "area": 120})  # fmt: skip
    cats = [{"id": 3, "name": "other"}, {"id": 7, "name": "thing"}]
    js = root / "ann.json"
    js.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return str(js), str(img_dir)


def test_registers_and_loads(tmp_path):
    js, root = _write_coco(tmp_path)
    dicts = coco_json_dataset(name="cocojson_test_ok", json_file=js, image_root=root)
    assert [d["image_id"] for d in dicts] == [10, 11]  # the empty image is filtered
    a = dicts[0]["annotations"][0]
    assert a["category_id"] == 1  # json id 7 -> contiguous 1
    # the validator hands boxes on as XYXY (json: x, y, w, h = 2, 3, 10, 12)
    assert a["bbox"] == [2, 3, 12, 15] and a["bbox_mode"] == BoxMode.XYXY_ABS
    meta = MetadataCatalog.get("cocojson_test_ok")
    assert meta.thing_classes == ["other", "thing"] and meta.evaluator_type == "coco"
    assert dicts[0]["file_name"] == os.path.join(root, "0.png")


def test_test_loader_keeps_empty_images(tmp_path):
    js, root = _write_coco(tmp_path)
    dicts = coco_json_dataset(
        name="cocojson_test_test", json_file=js, image_root=root, filter_empty=False
    )
    assert [len(d["annotations"]) for d in dicts] == [1, 1, 0]


def test_reregistration_same_paths_only(tmp_path, monkeypatch):
    js, root = _write_coco(tmp_path)
    assert len(coco_json_dataset(name="cocojson_test_again", json_file=js, image_root=root)) == 2
    # the same files, spelled relative to the working directory: accepted
    monkeypatch.chdir(tmp_path)
    again = coco_json_dataset(
        name="cocojson_test_again", json_file="ann.json", image_root="images/"
    )
    assert len(again) == 2
    with pytest.raises(ValueError, match="'cocojson_test_again' is already registered with"):
        coco_json_dataset(name="cocojson_test_again", json_file=js, image_root=str(tmp_path))


def test_lazy_config_and_freezedet_prefix(tmp_path, monkeypatch):
    _write_coco(tmp_path)
    monkeypatch.setenv("FREEZEDET_DATA", str(tmp_path))
    cfg = L(coco_json_dataset)(
        name="cocojson_test_lazy", json_file="freezedet://ann.json", image_root="freezedet://images"
    )
    dicts = instantiate(cfg)
    assert len(dicts) == 2 and dicts[0]["file_name"] == "freezedet://images/0.png"
    with pytest.raises(FileNotFoundError, match="freezedet://nope.json resolves to"):
        coco_json_dataset(
            name="cocojson_test_nope", json_file="freezedet://nope.json", image_root="x"
        )


def test_errors_name_file_and_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json' does not exist"):
        coco_json_dataset(
            name="cocojson_test_bad", json_file=str(tmp_path / "nope.json"), image_root="."
        )
    bad = tmp_path / "bad.json"
    cases = [
        ("{not json", ValueError, "bad.json: not valid JSON"),
        ("[1, 2]", ValueError, "bad.json: the top level is a list"),
        ({"images": [], "annotations": []}, KeyError, "bad.json: missing top-level key 'categor"),
        ({"images": {}, "annotations": [], "categories": []}, ValueError, "'images' is a dict"),
        (
            {"images": [{"id": 1, "file_name": "a.png"}], "annotations": [], "categories": []},
            KeyError,
            r"bad.json: images\[0\] lacks \['height', 'width'\]",
        ),
        (
            {"images": [], "annotations": [{"image_id": 1, "bbox": []}], "categories": []},
            KeyError,
            r"annotations\[0\] lacks \['category_id'\]",
        ),
    ]
    for content, error, message in cases:
        bad.write_text(content if isinstance(content, str) else json.dumps(content))
        with pytest.raises(error, match=message):
            check_coco_json(str(bad))
    js, _ = _write_coco(tmp_path)
    with pytest.raises(FileNotFoundError, match="image_root .*missing' .*ann.json"):
        coco_json_dataset(
            name="cocojson_test_noroot", json_file=js, image_root=str(tmp_path / "missing")
        )
    assert "cocojson_test_noroot" not in MetadataCatalog.list()


def test_goes_through_the_validator_with_its_options(tmp_path):
    """The own-data route (docs/getting_started.md): a missing image is an error naming the file,
    and skip_bad_images (which that message suggests) works here as on every entry point."""
    js, root = _write_coco(tmp_path, n_images=3, annotated=3)
    os.remove(os.path.join(root, "1.png"))
    with pytest.raises(FileNotFoundError, match=r"'cocojson_test_val': image .*1.png does not"):
        coco_json_dataset(name="cocojson_test_val", json_file=js, image_root=root)
    dicts = coco_json_dataset(
        name="cocojson_test_val", json_file=js, image_root=root, skip_bad_images=True
    )
    assert [d["image_id"] for d in dicts] == [10, 12]


def test_every_entry_point_has_the_same_options():
    import inspect

    from freezedet.data.lvis import lvis_json_dataset
    from freezedet.data.validate import check_records, checked_dataset_dicts

    options = {"skip_bad_images", "verify_images", "high_bit_depth"}
    for fn in (check_records, checked_dataset_dicts, coco_json_dataset, lvis_json_dataset):
        params = inspect.signature(fn).parameters
        assert options <= set(params), (fn.__name__, sorted(params))
        defaults = {k: params[k].default for k in options}
        assert defaults == {"skip_bad_images": False, "verify_images": True,
                            "high_bit_depth": "error"}, (fn.__name__, defaults)  # fmt: skip


def test_unknown_category_id_names_the_json(tmp_path):
    """detectron2's KeyError ("Encountered category_id=7 but this id does not exist in
    'categories' of the json file.") names neither the file nor the fix."""
    from detectron2.data.datasets import register_coco_instances
    from freezedet.data.validate import checked_dataset_dicts
    from freezedet.utils.errors import UserError

    js, root = _write_coco(tmp_path)
    data = json.loads(open(js).read())
    data["categories"] = [{"id": 3, "name": "other"}]  # the annotations use id 7
    bad = tmp_path / "cats.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(KeyError, match=r"cats.json: 2 annotation\(s\) have a category_id that is "
                       r"not in 'categories' \(category_id 7; annotation id 1") as e:  # fmt: skip
        coco_json_dataset(name="cocojson_test_cats", json_file=str(bad), image_root=root)
    assert isinstance(e.value, UserError) and "Add the missing categories" in str(e.value)
    # registered another way (detectron2's own function): detectron2's error, with the file
    register_coco_instances("cocojson_test_cats_d2", {}, str(bad), root)
    with pytest.raises(KeyError, match=r"cats.json: Encountered category_id=7 .*add the category"):
        checked_dataset_dicts("cocojson_test_cats_d2")


def test_write_coco_json_round_trips_through_the_dataset(tmp_path):
    """Records written by ``write_coco_json`` load back as the same boxes and classes."""
    from freezedet.data.coco_json import write_coco_json

    (tmp_path / "images").mkdir()
    records = []
    for i, boxes in enumerate([[(4.0, 6.0, 30.0, 40.0)], [(1.0, 2.0, 9.0, 9.0), (20, 10, 60, 50)]]):
        path = str(tmp_path / "images" / f"{i}.png")
        Image.fromarray(np.full((64, 80, 3), 100 + i, np.uint8)).save(path)
        anns = [{"bbox": list(b), "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0} for b in boxes]
        records.append(
            {"file_name": path, "image_id": i, "height": 64, "width": 80, "annotations": anns}
        )
    path = str(tmp_path / "ann.json")
    n = write_coco_json(records, path, image_root=str(tmp_path / "images"), class_names=["box"])
    assert n == sum(len(r["annotations"]) for r in records)
    loaded = coco_json_dataset(
        name="written_roundtrip", json_file=path, image_root=str(tmp_path / "images")
    )
    by_file = {r["file_name"]: r for r in loaded}
    for r in records:
        got = by_file[r["file_name"]]
        boxes = sorted(tuple(a["bbox"]) for a in got["annotations"])
        want = sorted(tuple(float(v) for v in a["bbox"]) for a in r["annotations"])
        assert boxes == want, (boxes, want)
        assert {a["category_id"] for a in got["annotations"]} == {0}
