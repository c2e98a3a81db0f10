"""FeatureCache: storage round trips and budget, the refusal of infinite input pipelines, and
training with the cache equal to training without it."""

import copy
import logging
import os

import pytest
import torch

import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from detectron2.config import instantiate
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage
from freezedet.data.transforms import RandomRot90
from freezedet.engine import load_config
from freezedet.engine.summary import check_cacheable_augmentations, check_feature_cache_config
from freezedet.model_zoo import configs_root
from freezedet.modeling.backbone import FeatureCache

CACHED = os.path.join(configs_root(), "DeepForest", "faster_rcnn_fpn_effl0_frozen_cached.py")


@pytest.mark.parametrize("on_disk", [False, True])
def test_round_trip_budget_and_counts(on_disk, tmp_path, caplog):
    path = str(tmp_path / "cache.bin") if on_disk else None
    feats = [torch.randn(4, 8, 8), torch.randn(6, 4, 4).half()]
    size_mb = sum(f.numel() * f.element_size() for f in feats) / 2**20
    cache = FeatureCache(budget_mb=2.5 * size_mb, path=path)
    x = torch.randn(3, 3, 16, 16)
    assert cache.put(cache.key(x[0]), feats) and cache.put(cache.key(x[1]), feats)
    with caplog.at_level(logging.WARNING):
        assert not cache.put(cache.key(x[2]), feats), "over budget must be refused"
        assert not cache.put(cache.key(x[2]), feats)
    assert caplog.text.count("FeatureCache full") == 1
    assert len(cache) == 2 and cache.used_mb == pytest.approx(2 * size_mb)
    got = cache.get(cache.key(x[1]), "cpu")
    assert [g.dtype for g in got] == [f.dtype for f in feats]
    assert all(torch.equal(g, f) for g, f in zip(got, feats))
    assert cache.get(cache.key(x[2]), "cpu") is None
    # a different view (flip) of the same image is a different key
    assert cache.key(x[0].flip(-1)) != cache.key(x[0])
    if on_disk:
        assert os.path.getsize(path) == cache.budget_bytes


def test_batch_lookup_computes_only_missing_views():
    cache = FeatureCache(budget_mb=10)
    calls = []

    def compute(x):
        calls.append(len(x))
        return [x * 2, x.mean(1, keepdim=True)]

    x = torch.randn(3, 3, 8, 8)
    first = cache(x[:2], compute)
    mixed = cache(x[[1, 2, 0]], compute)
    assert calls == [2, 1] and (cache.hits, cache.misses) == (2, 3)
    expected = compute(x[[1, 2, 0]])
    assert all(torch.equal(a, b) for a, b in zip(mixed, expected))
    assert torch.equal(first[0], x[:2] * 2)


def test_refuses_random_augmentations_by_name():
    check_cacheable_augmentations(
        [
            L(T.RandomFlip)(horizontal=True),
            T.RandomFlip(horizontal=False, vertical=True),
            L(T.ResizeShortestEdge)(short_edge_length=400, max_size=1333),
            T.ResizeShortestEdge(short_edge_length=[512], sample_style="choice"),
            # a finite choice of sizes and the 8 symmetries of the square: every view recurs
            L(T.ResizeShortestEdge)(short_edge_length=(400, 480, 560), sample_style="choice"),
            L(RandomRot90)(),
        ]
    )
    bad = {
        "ResizeShortestEdge": L(T.ResizeShortestEdge)(short_edge_length=(320, 480)),
        "ResizeScale": L(T.ResizeScale)(
            min_scale=0.5, max_scale=2.0, target_height=400, target_width=400
        ),
        "RandomBrightness": T.RandomBrightness(0.9, 1.1),
        "RandomCrop": L(T.RandomCrop)(crop_type="relative", crop_size=(0.5, 0.5)),
    }
    for name, aug in bad.items():
        with pytest.raises(ValueError, match=f"train augmentation {name}"):
            check_cacheable_augmentations([T.RandomFlip(), aug])


def test_config_check():
    cfg = load_config(CACHED)
    check_feature_cache_config(cfg)  # flips of fixed-size tiles: accepted
    jitter = copy.deepcopy(cfg)
    jitter.dataloader.train.mapper.augmentations.append(
        L(T.ResizeShortestEdge)(short_edge_length=(320, 480), sample_style="range")
    )
    with pytest.raises(ValueError, match="ResizeShortestEdge .*samples a new size"):
        check_feature_cache_config(jitter)
    finetune = copy.deepcopy(cfg)
    finetune.model.backbone.bottom_up.mode = "finetune"
    with pytest.raises(ValueError, match="mode='finetune'.*feature_cache=null"):
        check_feature_cache_config(finetune)
    # `key=None` on the command line is the string 'None' in Hydra's grammar: named, not built
    typo = load_config(CACHED, ["model.backbone.bottom_up.feature_cache=None"])
    with pytest.raises(ValueError, match="'None' is a string.*feature_cache=null"):
        check_feature_cache_config(typo)
    assert (
        load_config(CACHED, ["model.backbone.bottom_up.feature_cache=null"])
        .model.backbone["bottom_up"]
        .feature_cache
        is None
    )
    # selecting a mode that trains the trunk drops the recipe's cache (freezedet.config.use_trunk)
    p2 = os.path.join(configs_root(), "DeepForest", "faster_rcnn_fpn_p2.py")
    assert load_config(p2).model.backbone.bottom_up.feature_cache is not None
    selected = load_config(p2, ["trunk.mode=finetune"])
    assert selected.model.backbone.bottom_up.feature_cache is None
    check_feature_cache_config(selected)


def _batches(size=128):
    g = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 255, (3, size, size), generator=g, dtype=torch.uint8) for _ in "abc"]
    out = []
    for i in range(3):
        inst = Instances((size, size))
        inst.gt_boxes = Boxes(torch.tensor([[10.0, 12.0, 60.0, 70.0], [70.0, 20.0, 120.0, 90.0]]))
        inst.gt_classes = torch.tensor([0, 0])
        out.append({"image": images[i], "instances": inst, "height": size, "width": size})
    flipped = dict(out[2], image=out[2]["image"].flip(-1))  # another view of image 2
    # two "epochs" over batches of 2, in a different order the second time
    return [[out[0], out[1]], [out[2], flipped], [out[1], out[0]], [flipped, out[2]]]


def _train(model, batches):
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    torch.manual_seed(0)
    losses = []
    model.train()
    with EventStorage():
        for batch in batches:
            loss = sum(model(batch).values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


def test_training_with_cache_equals_training_without(tmp_path):
    cfg = load_config(CACHED)
    cfg.model.roi_heads.batch_size_per_image = 32
    cfg.model.proposal_generator.post_nms_topk = (50, 50)
    cfg.model.backbone.bottom_up.feature_cache.path = str(tmp_path / "features.bin")
    torch.manual_seed(0)
    cached = instantiate(cfg.model)
    plain = copy.deepcopy(cached)
    plain.backbone.bottom_up.feature_cache = None
    batches = _batches()
    expected = _train(plain, batches)
    got = _train(cached, batches)
    cache = cached.backbone.bottom_up.feature_cache
    assert (cache.hits, cache.misses) == (4, 4), (cache.hits, cache.misses)
    assert cached.backbone.bottom_up.trunk_calls == 2
    assert plain.backbone.bottom_up.trunk_calls == 4
    torch.testing.assert_close(torch.tensor(got), torch.tensor(expected), rtol=1e-5, atol=1e-6)
    for (n, a), b in zip(cached.named_parameters(), plain.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=n)
    cached.eval()
    cached([{k: v for k, v in batches[0][0].items() if k != "instances"}])
    assert cache.hits + cache.misses == 8, "inference must not use the training cache"
