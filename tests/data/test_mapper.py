"""A mapper error names the file, also from a data-loader worker process."""

import numpy as np
import pytest
from PIL import Image

from detectron2.config import LazyCall as L
from detectron2.data import DatasetMapper, build_detection_test_loader
from freezedet.data.mapper import FileNamingMapper, MapperError
from freezedet.data.validate import check_records
from freezedet.engine import instantiate_loader


def test_read_error_in_a_worker_names_the_file(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (40, 60, 3), np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated after the dataset was checked
    records = [{"file_name": str(path), "image_id": 7, "height": 40, "width": 60}]
    records = check_records(records, name="late_truncation", verify_images=False)
    mapper = L(DatasetMapper)(is_train=False, augmentations=[], image_format="RGB")
    for workers in (0, 1):
        loader = instantiate_loader(
            L(build_detection_test_loader)(mapper=mapper, num_workers=workers), dataset=records
        )
        with pytest.raises(MapperError, match=r"photo.jpg.*image_id 7: OSError: image file is"):
            next(iter(loader))


def test_wraps_any_mapper_and_names_converted_sources():
    def broken(record):
        raise ValueError("bad polygon")

    record = {"file_name": "/cache/x.png", "source_file_name": "/data/x.tif", "image_id": 1}
    with pytest.raises(MapperError, match=r"/cache/x.png \(converted from /data/x.tif\).*polygon"):
        FileNamingMapper(mapper=broken)(record)
    assert FileNamingMapper(mapper=lambda r: r["image_id"])(record) == 1
