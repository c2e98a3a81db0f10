import numpy as np
import pytest
from PIL import Image

from detectron2.data import DatasetCatalog
from detectron2.structures import BoxMode
from freezedet.data.validate import check_records, checked_dataset_dicts


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
    with pytest.raises(FileNotFoundError, match=r"'toy': image .*corrupt.png cannot be decoded"):
        check_records(records, name="toy")
    with pytest.raises(FileNotFoundError, match=r"missing.png does not exist.*skip_bad_images"):
        check_records(records[2:], name="toy")


def test_skip_bad_images_and_box_cleaning_are_counted(tmp_path, caplog):
    with caplog.at_level("WARNING"):
        out = check_records(_records(tmp_path), name="toy", skip_bad_images=True)
    assert [r["image_id"] for r in out] == [0]
    boxes = [a["bbox"] for a in out[0]["annotations"]]
    assert boxes == [[2, 2, 10, 10], [0, 15, 8, 20], [1, 1, 5, 5]]
    for text in (
        "2 unreadable images skipped",
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
