"""freezedet.Predictor on real images: batching, original-size outputs, test-time resize and
masks, tiled = untiled when the image fits one tile, a real detector over many tiles, dataset
category ids in results, clear errors for bad weights."""

import os

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from torchvision.ops import box_iou

import freezedet
from detectron2.config import instantiate
from detectron2.data import DatasetCatalog
from freezedet.data.deepforest import deepforest_data_dir
from freezedet.inference import CroppedMasks, instances_to_results, resolve_weights
from freezedet.inference.export import detection_differences


@pytest.fixture(scope="module")
def fpn(checkpoints):
    config, opts, weights = checkpoints("fpn")
    return freezedet.Predictor.from_config(config, weights, opts=opts, device="cpu")


def _val_images(predictor, n):
    return [predictor.read(r["file_name"]) for r in DatasetCatalog.get("deepforest_val")[:n]]


def test_batches_give_the_single_image_predictions(fpn):
    images = _val_images(fpn, 3)
    images.insert(2, np.ascontiguousarray(images[0][40:340, 10:260]))  # another size
    fpn.batch_size = 4
    try:
        batched = fpn(images)
    finally:
        fpn.batch_size = 1
    singles = [fpn(im) for im in images]
    for image, a, b in zip(images, batched, singles):
        assert a.image_size == image.shape[:2], (a.image_size, image.shape)
        assert len(a) > 0
        diff = detection_differences(a, b)
        assert diff["box"] <= 1e-2 and diff["score"] <= 1e-4, diff


def test_tiled_equals_untiled_on_an_image_smaller_than_a_tile(fpn):
    image = np.ascontiguousarray(_val_images(fpn, 1)[0][:350, :300])
    whole = fpn(image)
    fpn.tile_size = 400
    try:
        tiled = fpn(image)
    finally:
        fpn.tile_size = None
    assert len(whole) > 0
    for field in ("scores", "pred_classes"):
        assert torch.equal(tiled.get(field), whole.get(field)), field
    assert torch.equal(tiled.pred_boxes.tensor, whole.pred_boxes.tensor)


def test_tiled_prediction_of_a_real_source_image_region(checkpoints):
    config, opts, weights = checkpoints("fpn")
    predictor = freezedet.Predictor.from_config(
        config, weights, opts=opts, device="cpu", tile_size=400, overlap=0.25, batch_size=3
    )
    source = os.path.join(deepforest_data_dir(), "2019_YELL_2_541000_4977000_image_crop.png")
    image = np.ascontiguousarray(predictor.read(source)[100:700, 200:1000])  # 600 x 800: 6 tiles
    got = predictor(image)
    assert got.image_size == (600, 800) and len(got) > 50, (got.image_size, len(got))
    boxes = got.pred_boxes.tensor
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 800).all() and (boxes[:, 3] <= 600).all()
    iou = box_iou(boxes, boxes).fill_diagonal_(0)
    assert iou.max() <= 0.5, iou.max()  # merged: no two boxes of one class overlap above NMS IoU
    assert torch.all(got.scores[:-1] >= got.scores[1:]), "merged detections sorted by score"


def test_mask_model_with_test_resize_predicts_at_original_size(checkpoints):
    config, opts, weights = checkpoints("mask_fpn")
    predictor = freezedet.Predictor.from_config(config, weights, opts=opts, device="cpu")
    record = DatasetCatalog.get("labelme_voc_train")[0]
    image = predictor.read(record["file_name"])
    assert max(image.shape[:2]) > 400  # the config's test transform resizes to 320 px
    got = predictor(image)
    height, width = image.shape[:2]
    assert len(got) > 0 and got.pred_masks.shape == (len(got), height, width), got.pred_masks.shape
    results = instances_to_results(got, image_id=7, file_name="x.jpg", metadata=predictor.metadata)
    decoded = mask_util.decode([r["segmentation"] for r in results])
    assert decoded.shape == (height, width, len(got))
    np.testing.assert_array_equal(decoded.transpose(2, 0, 1), got.pred_masks.numpy())
    predictor.tile_size = 256
    tiled = predictor(image)
    assert isinstance(tiled.pred_masks, CroppedMasks) and len(tiled) > 0
    tiled_results = instances_to_results(tiled, image_id=7, metadata=predictor.metadata)
    assert all(r["segmentation"]["size"] == [height, width] for r in tiled_results)


def test_results_use_the_dataset_category_ids(checkpoints, coco_config):
    _, opts, weights = checkpoints("fpn")
    predictor = freezedet.Predictor.from_config(coco_config, weights, opts=opts, device="cpu")
    assert predictor.metadata.thing_dataset_id_to_contiguous_id == {1: 0}
    # the predictor read the json's categories only; the images come from the dataset itself
    records = instantiate(predictor.config.dataloader.test.dataset)
    image = predictor.read(records[0]["file_name"])
    results = instances_to_results(predictor(image), image_id=3, metadata=predictor.metadata)
    assert results and {r["category_id"] for r in results} == {1}, results[:2]


def test_weights_errors_say_what_is_wrong(tmp_path, checkpoints):
    config, opts, weights = checkpoints("fpn")
    with pytest.raises(FileNotFoundError, match="weights .*nope.pth do not exist"):
        freezedet.Predictor.from_config(config, str(tmp_path / "nope.pth"), opts=opts)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda', but CUDA is not available"):
            freezedet.Predictor.from_config(config, weights, opts=opts, device="cuda")
    with pytest.raises(FileNotFoundError, match="directory without model_final.pth"):
        resolve_weights(str(tmp_path))
    run = tmp_path / "run"
    run.mkdir()
    (run / "model_0000099.pth").symlink_to(weights)
    (run / "last_checkpoint").write_text("model_0000099.pth")
    assert resolve_weights(str(run)) == str(run / "model_0000099.pth")
    assert resolve_weights(os.path.dirname(weights)) == weights  # model_final.pth first


def test_tta_predictions_fuse_the_views_of_a_real_tile(checkpoints):
    from detectron2.config import LazyCall as L
    from freezedet.engine import load_config
    from freezedet.inference import DihedralTTA

    config, opts, weights = checkpoints("fpn")
    # no tta node: the dihedral TTA, 8 views unless told
    for views, expected in ((None, 8), (2, 2)):
        predictor = freezedet.Predictor.from_config(
            config, weights, opts=opts, device="cpu", tta=True, tta_views=views
        )
        assert isinstance(predictor.model, DihedralTTA) and len(predictor.model.views) == expected
    cfg = load_config(config, opts)
    cfg.tta = L(DihedralTTA)(views=4, max_detections=40)
    predictor = freezedet.Predictor.from_config(cfg, weights, device="cpu", tta=True)
    assert isinstance(predictor.model, DihedralTTA)
    image = np.ascontiguousarray(_val_images(predictor, 1)[0][:360, :320])  # not square
    fused = predictor(image)
    assert fused.image_size == image.shape[:2] and 0 < len(fused) <= 40
    boxes = fused.pred_boxes.tensor
    assert (boxes[:, 2] <= image.shape[1] + 1e-3).all() and (
        boxes[:, 3] <= image.shape[0] + 1e-3
    ).all()
    assert (fused.scores <= 1).all() and (fused.scores[:-1] >= fused.scores[1:]).all()
