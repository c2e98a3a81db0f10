"""Selective-search proposals: search, filters, resumable cache, dataset loader and CLI."""

import importlib.metadata
import json
import os
import runpy
import subprocess
import sys

import cv2
import numpy as np
import pytest

from detectron2.data.detection_utils import transform_proposals
from detectron2.data.transforms import ResizeTransform, TransformList
from detectron2.structures import BoxMode
from freezedet.data import proposals as P

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PARAMS = dict(
    mode="fast", max_side=None, min_size=4.0, max_aspect_ratio=3.0, nms_thresh=0.7, topk=50, seed=0
)


def _deepforest_png(name):
    data = importlib.metadata.distribution("deepforest").locate_file("deepforest/data")
    return cv2.imread(os.path.join(str(data), name + ".png"))


@pytest.fixture(scope="module")
def crops():
    """Three real 80x96 aerial crops (BGR), small enough for ~0.05 s of search each."""
    osbs, soap = _deepforest_png("OSBS_029"), _deepforest_png("SOAP_031")
    return [osbs[0:80, 0:96], osbs[200:280, 150:246], soap[100:180, 300:396]]


@pytest.fixture()
def image_dir(tmp_path, crops):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, crop in enumerate(crops):
        cv2.imwrite(str(folder / f"img{i}.png"), crop)
    return folder


def test_selective_search_boxes_are_ranked_deterministic_and_inside(crops):
    boxes = P.selective_search(crops[0])
    assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 4
    assert len(boxes) > 20, len(boxes)
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert boxes[:, [0, 1]].min() >= 0
    assert boxes[:, 2].max() <= 96 and boxes[:, 3].max() <= 80
    assert boxes[:, 2].max() == 96  # some region reaches the right edge: x1 is exclusive
    # no duplicate boxes (OpenCV removes them)
    assert len(np.unique(boxes, axis=0)) == len(boxes)
    # the ranking uses C rand(), seeded per image: same result after other work
    P.selective_search(crops[1])
    np.testing.assert_array_equal(P.selective_search(crops[0]), boxes)
    assert not np.array_equal(P.selective_search(crops[0], seed=1), boxes)
    assert len(P.selective_search(crops[0], mode="single")) < len(boxes)


def test_selective_search_downscales_and_maps_boxes_back(crops):
    small = crops[0]
    # a 2x nearest-neighbour upscale, area-downscaled by 2, is exactly the small image again
    big = cv2.resize(small, (192, 160), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(
        P.selective_search(big, max_side=96), 2 * P.selective_search(small)
    )
    # max_side above the image size leaves it alone
    np.testing.assert_array_equal(P.selective_search(small, max_side=96), P.selective_search(small))
    with pytest.raises(AssertionError, match="mode"):
        P.selective_search(small, mode="slow")


def test_rank_logits_decrease():
    np.testing.assert_array_equal(P.rank_logits(3), np.array([0, -1, -2], dtype=np.float32))
    assert P.rank_logits(0).shape == (0,)


def test_filter_proposals_min_size_aspect_nms_topk_and_order():
    boxes = np.array(
        [
            [10, 10, 50, 50],  # 0 kept
            [12, 11, 51, 50],  # 1 IoU ~0.9 with 0, ranked lower: suppressed
            [0, 0, 5, 40],  # 2 width 5 < min_size 6
            [0, 60, 70, 80],  # 3 aspect 70/20 = 3.5 > 3
            [60, 60, 120, 90],  # 4 clipped to x1=100 -> 40x30, kept
            [70, 0, 100, 30],  # 5 kept
            [20, 20, 60, 60],  # 6 IoU 0.39 with 0: kept
            [-5, 70, 25, 100],  # 7 clipped to 25x30, kept
        ],
        dtype=np.float32,
    )
    kw = dict(image_size=(100, 100), min_size=6, max_aspect_ratio=3, nms_thresh=0.7)
    out = P.filter_proposals(boxes, topk=10, **kw)
    np.testing.assert_array_equal(out, boxes[[0, 4, 5, 6, 7]].clip(0, 100))
    np.testing.assert_array_equal(P.filter_proposals(boxes, topk=2, **kw), out[:2])
    # NMS disabled keeps the near duplicate, in its rank position
    no_nms = P.filter_proposals(boxes, topk=10, **{**kw, "nms_thresh": 1.0})
    np.testing.assert_array_equal(no_nms, boxes[[0, 1, 4, 5, 6, 7]].clip(0, 100))
    # a looser aspect limit lets box 3 through
    loose = P.filter_proposals(boxes, topk=10, **{**kw, "max_aspect_ratio": 4})
    assert [0, 60, 70, 80] in loose.tolist()
    # the lower-ranked box wins when ranks are swapped
    swapped = P.filter_proposals(boxes[[1, 0]], topk=10, **kw)
    np.testing.assert_array_equal(swapped, boxes[[1]])
    assert P.filter_proposals(np.zeros((0, 4)), topk=5, **kw).shape == (0, 4)
    with pytest.raises(AssertionError, match="nms_thresh"):
        P.filter_proposals(boxes, topk=5, **{**kw, "nms_thresh": 0})


def test_generate_proposals_obeys_filters(crops):
    out = P.generate_proposals(crops[1], **{**PARAMS, "min_size": 10, "topk": 15})
    assert 0 < len(out) <= 15
    w, h = out[:, 2] - out[:, 0], out[:, 3] - out[:, 1]
    assert (w >= 10).all() and (h >= 10).all()
    assert (np.maximum(w / h, h / w) <= 3).all()
    raw = P.selective_search(crops[1])
    # survivors are raw proposals, still in raw rank order
    rows = [int(np.flatnonzero((raw == b).all(1))[0]) for b in out]
    assert rows == sorted(rows)


def test_cache_round_trip_and_loader(tmp_path):
    path = str(tmp_path / "sub" / "cache.json")
    cache = P.ProposalCache(path, params=PARAMS, dataset="toy", num_images=2)
    cache.add(7, boxes=np.array([[1.04, 2.06, 30.0, 40.54], [0, 0, 10, 10]]), height=50, width=60)
    cache.add("b", boxes=np.zeros((0, 4)), height=20, width=20)
    assert 7 in cache and "7" in cache and "c" not in cache and len(cache) == 2
    cache.save()
    assert os.listdir(tmp_path / "sub") == ["cache.json"]  # temp file renamed, none left over
    header, images = P.read_proposal_cache(path)
    assert header["dataset"] == "toy" and header["num_images"] == 2
    assert header["params"] == PARAMS and header["bbox_mode"] == "XYXY_ABS"
    assert images["7"] == {
        "height": 50,
        "width": 60,
        "boxes": [[1.0, 2.1, 30.0, 40.5], [0.0, 0.0, 10.0, 10.0]],
    }

    dicts = [{"image_id": 7, "height": 50, "width": 60}, {"image_id": "b"}]
    assert P.load_proposals_into_dicts(dicts, path, params=PARAMS) is dicts
    np.testing.assert_allclose(dicts[0]["proposal_boxes"], [[1.0, 2.1, 30, 40.5], [0, 0, 10, 10]])
    np.testing.assert_array_equal(dicts[0]["proposal_objectness_logits"], [0, -1])
    assert dicts[0]["proposal_bbox_mode"] == BoxMode.XYXY_ABS
    assert dicts[1]["proposal_boxes"].shape == (0, 4)

    # detectron2's mapper step consumes the keys: boxes resized with the image, top-k by rank
    transform_proposals(
        dicts[0], (100, 120), TransformList([ResizeTransform(50, 60, 100, 120)]), proposal_topk=1
    )
    props = dicts[0]["proposals"]
    np.testing.assert_allclose(props.proposal_boxes.tensor.numpy(), [[2.0, 4.2, 60, 81]])
    assert props.objectness_logits.tolist() == [0.0]


def test_loader_errors_name_the_images(tmp_path):
    path = str(tmp_path / "cache.json")
    cache = P.ProposalCache(path, params=PARAMS, dataset="toy", num_images=1)
    cache.add(1, boxes=[[0, 0, 5, 5]], height=50, width=60)
    cache.save()
    with pytest.raises(ValueError, match=r"no proposals for 2 of the 3 .*image ids: 2, 3\. Run"):
        P.load_proposals_into_dicts([{"image_id": i} for i in (1, 2, 3)], path)
    with pytest.raises(ValueError, match=r"1 \(cache 50x60, dataset 60x50\)"):
        P.load_proposals_into_dicts([{"image_id": 1, "height": 60, "width": 50}], path)
    with pytest.warns(UserWarning, match=r"'topk': \(50, 10\)"):
        P.load_proposals_into_dicts([{"image_id": 1}], path, params={**PARAMS, "topk": 10})
    with pytest.raises(FileNotFoundError, match="selective_search.py"):
        P.load_proposals_into_dicts([{"image_id": 1}], str(tmp_path / "none.json"))
    (tmp_path / "other.json").write_text(json.dumps({"images": {}}))
    with pytest.raises(ValueError, match="not a freezedet proposal cache"):
        P.read_proposal_cache(str(tmp_path / "other.json"))


def test_resume_skips_cached_images(tmp_path, image_dir, monkeypatch):
    files = [(f"img{i}.png", str(image_dir / f"img{i}.png")) for i in range(3)]
    out = str(tmp_path / "cache.json")
    fake = [[1.0, 2.0, 3.0, 4.0]]
    cache = P.ProposalCache(out, params=PARAMS, dataset="dir", num_images=3)
    cache.add("img1.png", boxes=fake, height=80, width=96)
    cache.save()

    calls = []
    real = P.generate_proposals

    def counting(image, **kw):
        calls.append(image.shape)
        return real(image, **kw)

    monkeypatch.setattr(P, "generate_proposals", counting)
    stats = P.generate_proposal_cache(files, out, params=PARAMS, dataset="dir", progress=False)
    assert stats["num_skipped"] == 1 and stats["num_computed"] == 2 and len(calls) == 2
    _, images = P.read_proposal_cache(out)
    assert sorted(images) == ["img0.png", "img1.png", "img2.png"]
    assert images["img1.png"]["boxes"] == fake  # pre-filled entry not recomputed
    assert len(images["img0.png"]["boxes"]) > 0
    assert (images["img2.png"]["height"], images["img2.png"]["width"]) == (80, 96)

    stats = P.generate_proposal_cache(files, out, params=PARAMS, dataset="dir", progress=False)
    assert stats["num_computed"] == 0 and len(calls) == 2

    with pytest.raises(ValueError, match=r"'topk': \(50, 20\)"):
        P.generate_proposal_cache(
            files, out, params={**PARAMS, "topk": 20}, dataset="dir", progress=False
        )
    with pytest.raises(ValueError, match=r"'dataset': \('dir', 'other'\)"):
        P.generate_proposal_cache(files, out, params=PARAMS, dataset="other", progress=False)


def test_interrupted_run_keeps_finished_images(tmp_path, image_dir, monkeypatch):
    files = [(f"img{i}.png", str(image_dir / f"img{i}.png")) for i in range(3)]
    out = str(tmp_path / "cache.json")
    real = P.generate_proposals
    calls = []

    def dies_on_second(image, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(image, **kw)

    monkeypatch.setattr(P, "generate_proposals", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        P.generate_proposal_cache(
            files, out, params=PARAMS, dataset="dir", progress=False, save_interval_s=1e9
        )
    _, images = P.read_proposal_cache(out)
    assert sorted(images) == ["img0.png"]
    monkeypatch.setattr(P, "generate_proposals", real)
    stats = P.generate_proposal_cache(files, out, params=PARAMS, dataset="dir", progress=False)
    assert stats["num_skipped"] == 1 and stats["num_computed"] == 2


def test_unreadable_image_is_named(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(RuntimeError, match=r"bad\.png \(image_id x\)"):
        P.generate_proposal_cache(
            [("x", str(bad))], str(tmp_path / "c.json"), params=PARAMS, dataset="d", progress=False
        )


def test_cli_two_workers_end_to_end(tmp_path, image_dir, crops, capsys):
    out = tmp_path / "cli.json"
    cmd = [sys.executable, os.path.join(REPO, "tools", "selective_search.py")]
    args = ["--image-dir", str(image_dir), "--output", str(out), "--workers", "2"]
    args += ["--min-size", "4", "--topk", "50", "--max-side", "0", "--no-progress"]
    run = subprocess.run(cmd + args, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "3 images computed" in run.stdout and "images/s, 2 workers" in run.stdout
    header, images = P.read_proposal_cache(str(out))
    assert header["params"] == PARAMS and header["num_images"] == 3
    assert header["dataset"] == f"dir:{image_dir}"
    # worker processes give the same proposals as this process (per-image seeding)
    for i, crop in enumerate(crops):
        expected = np.round(P.generate_proposals(crop, **PARAMS).astype(np.float64), 1)
        assert images[f"img{i}.png"]["boxes"] == expected.tolist()
    # the same command again resumes with nothing to do (in this process: a second
    # interpreter start costs more than the whole run)
    runpy.run_path(cmd[1])["main"](args)
    assert "0 images computed" in capsys.readouterr().out


def test_cli_reads_options_from_lazyconfig(tmp_path, image_dir):
    cli = runpy.run_path(os.path.join(REPO, "tools", "selective_search.py"))
    out = tmp_path / "cfg.json"
    cfg = tmp_path / "cfg.py"
    cfg.write_text(
        f"dataloader = dict(proposals=dict(image_dir={str(image_dir)!r}, output={str(out)!r}, "
        "topk=5, min_size=6.0))\n"
    )
    cli["main"](["--config-file", str(cfg), "--min-size", "12", "--no-progress"])
    header, images = P.read_proposal_cache(str(out))
    assert header["params"]["topk"] == 5 and header["params"]["min_size"] == 12.0
    assert len(images) == 3 and all(len(v["boxes"]) <= 5 for v in images.values())
    cfg.write_text("dataloader = dict(proposals=dict(top_k=5))\n")
    with pytest.raises(SystemExit):
        cli["main"](["--config-file", str(cfg)])
