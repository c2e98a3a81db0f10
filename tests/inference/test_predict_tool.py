"""tools/predict.py end to end on a folder of real images (and files it must refuse), then
tools/evaluate.py on its results json; clear messages for bad arguments."""

import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
from PIL import Image

from detectron2.data import DatasetCatalog
from freezedet.evaluation.results_file import main as evaluate_main
from freezedet.inference.predict_images import main as predict_main
from freezedet.utils.errors import call_main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _folder(tmp_path):
    """Two real DeepForest tiles, the first again as grayscale and RGBA, a text file, a
    corrupt PNG and a 16-bit PNG."""
    folder = tmp_path / "images"
    folder.mkdir()
    records = DatasetCatalog.get("deepforest_val")[:2]
    for name, r in zip(("a.png", "b.png"), records):
        shutil.copy(r["file_name"], folder / name)
    tile = Image.open(records[0]["file_name"])
    tile.convert("L").save(folder / "gray.png")
    tile.convert("RGBA").save(folder / "rgba.png")
    (folder / "README.txt").write_text("field notes")
    (folder / "broken.png").write_bytes((folder / "a.png").read_bytes()[:5000])  # truncated
    cv2.imwrite(str(folder / "depth16.png"), np.full((32, 32), 40000, np.uint16))
    return folder, records


def test_predict_folder_then_evaluate(tmp_path, checkpoints):
    config, opts, weights = checkpoints("fpn")
    folder, records = _folder(tmp_path)
    out = tmp_path / "preds"
    cmd = [sys.executable, os.path.join(ROOT, "tools", "predict.py"), "--config-file", config]
    cmd += ["--weights", os.path.dirname(weights), "--input", str(folder), "--output", str(out)]
    cmd += ["--score-threshold", "0.5", "--device", "cpu", "--opts", *opts]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=str(tmp_path), timeout=600)
    assert run.returncode == 1, run.stderr[-3000:]  # two images failed, the others were done
    err = run.stderr
    assert f"skipped {folder / 'README.txt'}: not an image file" in err, err[-3000:]
    assert f"{folder / 'broken.png'}: cannot read the image" in err, err[-3000:]
    assert f"{folder / 'depth16.png'}: 16-bit image" in err, err[-3000:]
    assert "predict: 100%" in err and "6/6" in err, err[-3000:]  # progress bar, all 6 counted
    assert "4 images predicted" in run.stdout, run.stdout
    for name in ("a", "b", "gray", "rgba"):
        with Image.open(out / f"{name}.png") as drawn:
            assert drawn.size == (400, 400) and drawn.mode == "RGB", (name, drawn.size)
    assert not (out / "broken.png").exists() and not (out / "depth16.png").exists()
    with open(out / "results.json") as f:
        results = json.load(f)
    names = {os.path.basename(r["file_name"]) for r in results}
    assert names == {"a.png", "b.png", "gray.png", "rgba.png"}, names
    assert all(r["score"] >= 0.5 and r["category_id"] == 0 for r in results)
    assert all(0 <= r["bbox"][0] and r["bbox"][0] + r["bbox"][2] <= 400 for r in results)
    ids = {os.path.basename(r["file_name"]): r["image_id"] for r in results}
    assert ids == {"a.png": 1, "b.png": 2, "gray.png": 5, "rgba.png": 6}, ids  # sorted files

    gt = {"images": [], "annotations": [], "categories": [{"id": 0, "name": "tree"}]}
    for i, (name, r) in enumerate(zip(("a.png", "b.png"), records)):
        gt["images"].append({"id": 10 + i, "file_name": name, "height": 400, "width": 400})
        for a in r["annotations"]:
            x0, y0, x1, y1 = a["bbox"]
            ann = {"id": len(gt["annotations"]) + 1, "image_id": 10 + i, "category_id": 0}
            ann.update(bbox=[x0, y0, x1 - x0, y1 - y0], area=(x1 - x0) * (y1 - y0), iscrowd=0)
            gt["annotations"].append(ann)
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt))
    metrics_path = tmp_path / "metrics.json"
    argv = ["--gt", str(gt_path), "--results", str(out / "results.json")]
    assert evaluate_main(argv + ["--max-dets", "300", "--output", str(metrics_path)]) == 0
    metrics = json.loads(metrics_path.read_text())
    assert set(metrics) == {"bbox"} and 0 <= metrics["bbox"]["AP50"] <= 100, metrics


def test_predict_in_tiles_and_bad_arguments(tmp_path, checkpoints, capsys):
    config, opts, weights = checkpoints("fpn")
    image = DatasetCatalog.get("deepforest_val")[0]["file_name"]
    out = tmp_path / "tiled"
    argv = ["--config-file", config, "--weights", weights, "--output", str(out), "--device", "cpu"]
    tiled = ["--input", image, "--tile", "256", "--overlap", "0.3", "--merge", "wbf"]
    assert predict_main(argv + tiled + ["--no-pictures", "--opts", *opts]) == 0
    assert os.listdir(out) == ["results.json"], os.listdir(out)
    assert json.loads((out / "results.json").read_text()), "no detections"
    capsys.readouterr()
    missing = ["--config-file", config, "--weights", str(tmp_path / "missing.pth")]
    # input errors are UserErrors: tools/predict.py's wrapper prints them, status 2
    bad = missing + ["--input", image, "--output", str(out), "--opts", *opts]
    assert call_main(predict_main, bad, prog="freezedet", debug=False) == 2
    assert "freezedet: error: weights" in capsys.readouterr().err
    bad = argv + ["--input", str(tmp_path / "*.nothing"), "--opts", *opts]
    assert call_main(predict_main, bad, prog="freezedet", debug=False) == 2
    assert "no such file, folder or matching file" in capsys.readouterr().err
