"""labelme's VOC example: fetch/extract logic, registration with polygon masks."""

import io
import json
import os
import tarfile

import pytest

from detectron2.data import DatasetCatalog, DatasetMapper, MetadataCatalog
from freezedet.data import labelme

VOC = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
       "diningtable", "dog", "horse", "motorbike", "person", "potted plant", "sheep", "sofa",
       "train", "tv/monitor"]  # fmt: skip


@pytest.fixture(scope="module")
def dicts():
    labelme.fetch_labelme_coco()  # no-op (no network) when make install already put it there
    return DatasetCatalog.get("labelme_voc_train")


def test_images_masks_and_classes(dicts):
    meta = MetadataCatalog.get("labelme_voc_train")
    assert meta.thing_classes == VOC and meta.evaluator_type == "coco"
    assert meta.thing_dataset_id_to_contiguous_id == {i + 1: i for i in range(20)}
    assert sorted(os.path.basename(d["file_name"]) for d in dicts) == [
        "2011_000003.jpg", "2011_000006.jpg", "2011_000025.jpg"
    ]  # fmt: skip
    anns = [a for d in dicts for a in d["annotations"]]
    assert len(anns) == 12
    names = sorted(VOC[a["category_id"]] for a in anns)
    # json ids 15 (person) x6, 6 (bus) x2, 5, 7, 9, 18 -> contiguous id - 1
    assert names == ["bottle", "bus", "bus", "car", "chair"] + ["person"] * 6 + ["sofa"], names
    for a in anns:
        assert isinstance(a["segmentation"], list) and len(a["segmentation"][0]) >= 6
        assert a["iscrowd"] == 0 and 0 <= a["category_id"] < 20


def test_mapper_builds_masks(dicts):
    record = next(d for d in dicts if d["file_name"].endswith("2011_000006.jpg"))
    mapper = DatasetMapper(
        is_train=True, augmentations=[], image_format="RGB", use_instance_mask=True
    )
    inst = mapper(dict(record))["instances"]
    assert len(inst) == 6 and inst.gt_masks.polygons
    # every polygon mask lies inside its box
    boxes = inst.gt_masks.get_bounding_boxes().tensor
    assert (boxes[:, :2] >= inst.gt_boxes.tensor[:, :2] - 1).all()
    assert (boxes[:, 2:] <= inst.gt_boxes.tensor[:, 2:] + 1).all()


def test_missing_data_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("FREEZEDET_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="python tools/fetch_data.py"):
        labelme.load_labelme()


def _add(tar, name, data: bytes):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _fake_sdist(path, images=("a.jpg",), skip_image=False):
    ex = "labelme-6.3.1/examples/instance_segmentation/data_dataset_coco"
    ann = {"images": [{"file_name": f"JPEGImages/{n}"} for n in images]}
    with tarfile.open(path, "w:gz") as tar:
        _add(tar, f"{ex}/annotations.json", json.dumps(ann).encode())
        for n in images[: len(images) - skip_image]:
            _add(tar, f"{ex}/JPEGImages/{n}", b"jpeg")
            _add(tar, f"{ex}/Visualization/{n}", b"render")
        _add(tar, f"{ex}/JPEGImages/../../escape.txt", b"x")
        _add(tar, "labelme-6.3.1/setup.py", b"")
    return str(path)


def test_extract_keeps_only_the_example(tmp_path):
    dest = tmp_path / "out" / "labelme_coco"
    labelme.extract_labelme_coco(_fake_sdist(tmp_path / "s.tar.gz", ("a.jpg", "b.jpg")), str(dest))
    files = sorted(
        os.path.relpath(os.path.join(d, f), dest) for d, _, fs in os.walk(dest) for f in fs
    )
    assert files == ["JPEGImages/a.jpg", "JPEGImages/b.jpg", "annotations.json"]
    assert sorted(os.listdir(tmp_path / "out")) == ["labelme_coco"]  # staging dir removed
    assert oct(os.stat(dest).st_mode & 0o777) == "0o755"
    # complete copy: fetch does nothing (it would need pip otherwise)
    assert labelme.fetch_labelme_coco(str(dest)) == str(dest)


def test_extract_refuses_incomplete_archive(tmp_path):
    bad = _fake_sdist(tmp_path / "s.tar.gz", ("a.jpg", "b.jpg"), skip_image=True)
    with pytest.raises(RuntimeError, match=r"s.tar.gz lacks .*JPEGImages/b.jpg"):
        labelme.extract_labelme_coco(bad, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    with pytest.raises(RuntimeError, match="not a readable sdist archive"):
        labelme.extract_labelme_coco(str(tmp_path / "out.txt"), str(tmp_path / "out"))


class _Result:
    def __init__(self, stderr):
        self.stdout, self.stderr, self.returncode = "", stderr, 1


def test_download_uses_pips_tree_when_metadata_fails(tmp_path, monkeypatch):
    """pip verified and unpacked the sdist, then failed to build its metadata: use the tree."""
    sdist = _fake_sdist(tmp_path / "s.tar.gz")
    calls = []

    def fake_run(cmd, env, **kwargs):
        calls.append(cmd)
        req = cmd[cmd.index("-r") + 1]
        assert open(req).read().split() == [
            "labelme==6.3.1", f"--hash=sha256:{labelme.LABELME_SHA256}"
        ]  # fmt: skip
        with tarfile.open(sdist) as tar:
            tar.extractall(os.path.join(env["TMPDIR"], "pip-download-x"))
        return _Result("error: metadata-generation-failed")

    monkeypatch.setattr(labelme.subprocess, "run", fake_run)
    work = tmp_path / "work"
    work.mkdir()
    tree = labelme.download_labelme_sdist(str(work))
    assert "--require-hashes" in calls[0] and "--no-binary" in calls[0]
    dest = labelme.extract_labelme_coco(tree, str(tmp_path / "dest"))
    assert sorted(os.listdir(dest)) == ["JPEGImages", "annotations.json"]
    assert os.listdir(os.path.join(dest, "JPEGImages")) == ["a.jpg"]


def test_download_refuses_hash_mismatch(tmp_path, monkeypatch):
    def fake_run(cmd, env, **kwargs):
        dest = cmd[cmd.index("-d") + 1]
        os.makedirs(dest)
        _fake_sdist(os.path.join(dest, "labelme-6.3.1.tar.gz"))
        return _Result("")

    monkeypatch.setattr(labelme.subprocess, "run", fake_run)
    (tmp_path / "a").mkdir()
    with pytest.raises(RuntimeError, match="has sha256 .*, expected 2947e0d8"):
        labelme.download_labelme_sdist(str(tmp_path / "a"))

    monkeypatch.setattr(
        labelme.subprocess, "run", lambda *a, **k: _Result("THESE PACKAGES DO NOT MATCH THE HASHES")
    )
    (tmp_path / "b").mkdir()
    with pytest.raises(RuntimeError, match="could not obtain labelme==6.3.1"):
        labelme.download_labelme_sdist(str(tmp_path / "b"))
