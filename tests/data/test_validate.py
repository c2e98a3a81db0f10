import os

import numpy as np
import pytest
from PIL import Image

from detectron2.data import DatasetCatalog
from detectron2.structures import BoxMode
from freezedet.data.image_io import ImageReadError
from freezedet.data.validate import check_records, checked_dataset_dicts
from freezedet.utils.errors import UserError


def _records(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(good)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    box = {"bbox": [2, 2, 10, 10], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0}
    return [
        {
            "file_name": str(good),
            "image_id": 0,
            "height": 20,
            "width": 30,
            "annotations": [
                dict(box),
                dict(box, bbox=[5, 5, 5, 9]),  # zero width
                dict(box, bbox=[-4, 15, 8, 40]),  # clipped to [0, 15, 8, 20]
                dict(box, bbox=[40, 40, 50, 50]),  # outside
                dict(box, bbox=[1, 1, 4, 4], bbox_mode=BoxMode.XYWH_ABS),
            ],
        },
        {"file_name": str(corrupt), "image_id": 1, "height": 20, "width": 30, "annotations": [box]},
        {
            "file_name": str(tmp_path / "missing.png"),
            "image_id": 2,
            "height": 20,
            "width": 30,
            "annotations": [box],
        },
    ]


def test_bad_image_is_a_clear_error(tmp_path):
    records = _records(tmp_path)
    with pytest.raises(ImageReadError, match=r"'toy': image .*corrupt.png cannot be decoded") as e:
        check_records(records, name="toy")
    assert isinstance(e.value, UserError)
    with pytest.raises(
        FileNotFoundError, match=r"missing.png does not exist.*skip_bad_images"
    ) as e:
        check_records(records[2:], name="toy")
    assert isinstance(e.value, UserError)


def test_skip_bad_images_and_box_cleaning_are_counted(tmp_path, caplog):
    with caplog.at_level("WARNING"):
        out = check_records(_records(tmp_path), name="toy", skip_bad_images=True)
    assert [r["image_id"] for r in out] == [0]
    boxes = [a["bbox"] for a in out[0]["annotations"]]
    assert boxes == [[2, 2, 10, 10], [0, 15, 8, 20], [1, 1, 5, 5]]
    for text in (
        "2 unreadable images skipped",
        "(skipped: corrupt.png, missing.png)",
        "1 degenerate boxes dropped",
        "1 boxes clipped to the image",
        "1 boxes outside the image dropped",
    ):
        assert text in caplog.text, text


def test_zero_usable_images(tmp_path):
    records = _records(tmp_path)[1:]
    with pytest.raises(ValueError, match="has no usable image"):
        check_records(records, name="toy", skip_bad_images=True)
    name = "toy_no_boxes_validate"
    bare = [dict(_records(tmp_path)[0], annotations=[])]
    DatasetCatalog.register(name, lambda: bare)
    with pytest.raises(ValueError, match="no image with a usable box"):
        checked_dataset_dicts(name)
    assert len(checked_dataset_dicts(name, filter_empty=False)) == 1


def test_deleted_coco_conversion_cache_is_converted_again(tmp_path):
    from detectron2.data import MetadataCatalog
    from freezedet.evaluation import COCOEvaluator

    name = "toy_conversion_cache_validate"
    records = [dict(_records(tmp_path)[0], annotations=_records(tmp_path)[0]["annotations"][:1])]
    DatasetCatalog.register(name, lambda: records)
    MetadataCatalog.get(name).set(thing_classes=["thing"])
    first, second = tmp_path / "run1", tmp_path / "run2"
    COCOEvaluator(name, output_dir=str(first))
    assert MetadataCatalog.get(name).json_file == str(first / f"{name}_coco_format.json")
    for f in first.iterdir():
        f.unlink()
    first.rmdir()
    # training reads records from the dataset's function, not from the (deleted) cache
    assert len(checked_dataset_dicts(name)) == 1
    evaluator = COCOEvaluator(name, output_dir=str(second))
    cache = second / f"{name}_coco_format.json"
    assert MetadataCatalog.get(name).json_file == str(cache) and cache.is_file()
    assert len(evaluator._coco_api.getAnnIds()) == 1
    # a missing json that is not a conversion cache is still an error
    other = "toy_missing_json_validate"
    DatasetCatalog.register(other, lambda: records)
    MetadataCatalog.get(other).set(json_file=str(tmp_path / "nowhere" / "instances.json"))
    with pytest.raises(FileNotFoundError, match=r"'toy_missing_json_validate': annotation file"):
        checked_dataset_dicts(other)


def _jpeg(path, size=(64, 48), seed=0):
    rng = np.random.RandomState(seed)
    Image.fromarray(rng.randint(0, 255, (size[1], size[0], 3), np.uint8)).save(path, quality=90)
    return str(path)


def _truncate(path):
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


def test_truncated_jpeg_is_caught_and_checks_are_cached(tmp_path, monkeypatch):
    from freezedet.data import validate

    good, bad = _jpeg(tmp_path / "good.jpg"), _jpeg(tmp_path / "bad.jpg", seed=1)
    _truncate(bad)
    with Image.open(bad) as im:
        im.verify()  # what the validator used to rely on: PIL's verify() does not decode
    box = {"bbox": [2, 2, 10, 10], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0}
    records = [
        {"file_name": p, "image_id": i, "height": 48, "width": 64, "annotations": [box]}
        for i, p in enumerate([good, bad])
    ]
    cache = str(tmp_path / "cache")
    with pytest.raises(
        ImageReadError, match=r"bad.jpg cannot be decoded \(OSError: image file is truncated"
    ):
        check_records(records, name="trunc", cache_dir=cache)
    # the second run decodes nothing that is unchanged since the first
    decoded = []
    real_decode = validate._decode
    monkeypatch.setattr(validate, "_decode", lambda p: decoded.append(p) or real_decode(p))
    assert len(check_records(records[:1], name="trunc", cache_dir=cache)) == 1
    assert decoded == []
    # a file that changed (size / mtime) is decoded again
    _jpeg(good, size=(64, 48), seed=2)
    os.utime(good, ns=(1, 1))
    check_records(records[:1], name="trunc", cache_dir=cache)
    assert decoded == [good]


def test_decoded_size_must_match_the_json(tmp_path, caplog):
    """An image whose size (as detectron2 reads it: EXIF orientation applied) differs from its
    record's width / height is caught by the data check, not at the first training iteration."""
    plain = _jpeg(tmp_path / "plain.jpg", size=(64, 48))
    rotated = str(tmp_path / "rotated.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 64x48, shown (and read by detectron2) as 48x64
    Image.open(plain).save(rotated, exif=exif)
    box = {"bbox": [2, 2, 10, 10], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0}

    def record(path, w, h, i=0):
        return {"file_name": path, "image_id": i, "width": w, "height": h, "annotations": [box]}

    cache = str(tmp_path / "cache")
    assert len(check_records([record(plain, 64, 48), record(rotated, 48, 64, 1)], name="sz",
                             cache_dir=cache)) == 2  # fmt: skip
    with pytest.raises(ValueError, match=r"plain.jpg is 64x48 .* annotations say 60x48") as e:
        check_records([record(plain, 60, 48)], name="sz", cache_dir=cache)
    assert isinstance(e.value, UserError) and "Correct width / height" in str(e.value)
    with pytest.raises(ValueError, match=r"rotated.jpg is 48x64 .*EXIF orientation.* say 64x48"):
        check_records([record(rotated, 64, 48)], name="sz", cache_dir=cache)
    with caplog.at_level("WARNING"):
        out = check_records(
            [record(plain, 64, 48), record(rotated, 64, 48, 1)], name="sz", cache_dir=cache,
            skip_bad_images=True,
        )  # fmt: skip
    assert [r["image_id"] for r in out] == [0]
    assert "1 images whose size differs from their width / height skipped" in caplog.text
    # what the check prevents: detectron2's mapper fails on the first training iteration
    from detectron2.data import detection_utils

    image = detection_utils.read_image(rotated, format="RGB")
    with pytest.raises(detection_utils.SizeMismatchError):
        detection_utils.check_image_size(record(rotated, 64, 48), image)


def test_high_bit_depth_refused_or_converted_by_rule(tmp_path, caplog):
    values = np.linspace(0, 4000, 32 * 40).reshape(32, 40).astype(np.uint16)  # 12-bit data
    path = str(tmp_path / "cells.png")
    Image.fromarray(values).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I"), im.mode
        # what detectron2's read_image does with it: nearly every pixel clipped to 255
        assert (np.asarray(im.convert("RGB")) == 255).mean() > 0.9
    box = {"bbox": [2, 2, 10, 10], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0}
    records = [{"file_name": path, "image_id": 0, "height": 32, "width": 40, "annotations": [box]}]
    cache = str(tmp_path / "cache")
    with pytest.raises(ValueError, match=r"cells.png is not 8-bit .*high_bit_depth"):
        check_records(records, name="cells", cache_dir=cache)
    with pytest.raises(ValueError, match="high_bit_depth rule 'range:4095'"):
        check_records(records, name="cells", cache_dir=cache, high_bit_depth="range:4095")
    with caplog.at_level("WARNING"):
        out = check_records(records, name="cells", cache_dir=cache, high_bit_depth="range:0,4000")
    assert "1 images converted to 8-bit by rule 'range:0,4000'" in caplog.text
    assert out[0]["source_file_name"] == path and out[0]["file_name"].startswith(cache)
    converted = np.asarray(Image.open(out[0]["file_name"]))
    assert converted.dtype == np.uint8 and converted.shape == (32, 40)
    np.testing.assert_array_equal(converted, np.round(values / 4000 * 255).astype(np.uint8))
    # what the mapper then reads: the whole range, not a white image
    from detectron2.data.detection_utils import read_image

    rgb = read_image(out[0]["file_name"], format="RGB")
    assert rgb.min() == 0 and rgb.max() == 255 and (rgb == 255).mean() < 0.01


def test_bad_ground_truth_is_an_evaluation_error(tmp_path):
    """A box with negative width in an evaluation json: no detection can match it, so COCO AP
    would be silently lower (here 100 -> 50 with a perfect detector)."""
    import json

    import torch
    from detectron2.structures import Boxes, Instances
    from freezedet.data.coco_json import coco_json_dataset
    from freezedet.evaluation import COCOEvaluator

    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "a.png")
    anns = [
        {"id": 1, "image_id": 1, "bbox": [2, 2, 10, 10], "category_id": 1, "area": 100, "iscrowd": 0},
        {"id": 2, "image_id": 1, "bbox": [30, 20, -8, 10], "category_id": 1, "area": 80, "iscrowd": 0},
    ]  # fmt: skip
    js = tmp_path / "val.json"
    js.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "height": 40, "width": 40}],
        "annotations": anns, "categories": [{"id": 1, "name": "thing"}],
    }))  # fmt: skip
    records = coco_json_dataset(
        name="badgt_val", json_file=str(js), image_root=str(tmp_path), filter_empty=False
    )
    assert len(records[0]["annotations"]) == 1  # the loader drops it (counted) ...
    with pytest.raises(ValueError, match=r"val.json: 1 ground-truth annotation.*id 2 .*-8"):
        COCOEvaluator("badgt_val", distributed=False, output_dir=str(tmp_path / "ev"))
    # ... and without the check (detectron2's evaluator) a perfect detector gets AP 50
    from detectron2.evaluation import COCOEvaluator as D2COCOEvaluator

    ev = D2COCOEvaluator("badgt_val", distributed=False, use_fast_impl=False)
    inst = Instances((40, 40))
    inst.pred_boxes = Boxes(torch.tensor([[2.0, 2.0, 12.0, 12.0]]))
    inst.scores, inst.pred_classes = torch.tensor([0.9]), torch.tensor([0])
    ev.reset()
    ev.process([{"image_id": 1}], [{"instances": inst}])
    assert ev.evaluate()["bbox"]["AP50"] == pytest.approx(50.0, abs=1)


def test_max_dets_auto_counts_dense_images(tmp_path, caplog):
    """120 objects in one image: COCO's 100 detections cap a perfect detector's AP; "auto" counts
    2 x 120."""
    import json

    import torch
    from detectron2.structures import Boxes, Instances
    from freezedet.data.coco_json import coco_json_dataset
    from freezedet.evaluation import COCOEvaluator

    Image.fromarray(np.zeros((120, 100, 3), np.uint8)).save(tmp_path / "dense.png")
    boxes = [[10 * (i % 10), 10 * (i // 10), 8, 8] for i in range(120)]
    js = tmp_path / "dense.json"
    js.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "dense.png", "height": 120, "width": 100}],
        "annotations": [{"id": i + 1, "image_id": 1, "bbox": b, "category_id": 1, "area": 64,
                         "iscrowd": 0} for i, b in enumerate(boxes)],
        "categories": [{"id": 1, "name": "cell"}],
    }))  # fmt: skip
    coco_json_dataset(name="dense_val", json_file=str(js), image_root=str(tmp_path))
    inst = Instances((120, 100))
    inst.pred_boxes = Boxes(torch.tensor([[x, y, x + w, y + h] for x, y, w, h in boxes]).float())
    inst.scores = torch.linspace(1.0, 0.5, 120)
    inst.pred_classes = torch.zeros(120, dtype=torch.long)
    ap = {}
    for max_dets in (None, "auto"):
        with caplog.at_level("WARNING"):
            ev = COCOEvaluator(
                "dense_val", distributed=False, max_dets_per_image=max_dets,
                output_dir=str(tmp_path / str(max_dets)),
            )  # fmt: skip
        ev.reset()
        ev.process([{"image_id": 1}], [{"instances": inst}])
        ap[max_dets] = ev.evaluate()["bbox"]["AP"]
    assert (
        "dense_val: image 1 (dense.png) has 120 ground-truth objects but AP counts at most 100 "
        "detections per image (1 image(s) have more than 100)" in caplog.text
    ), caplog.text
    assert "max_dets_per_image=auto" in caplog.text
    assert ev.max_dets_per_image == 240
    assert ap["auto"] == pytest.approx(100.0) and ap[None] < 85, ap
