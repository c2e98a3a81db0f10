"""Can AlignDet's pretext task be learned? Box-domain pre-training on a few real DeepForest tiles.

Runs ``--iters`` iterations of :class:`~freezedet.modeling.meta_arch.AlignDetPretrainer` (the
recipe ``configs/DeepForest/aligndet_pretrain_faster_rcnn_fpn_effl0.py``: frozen ImageNet
EfficientNet-Lite0, FPN, RPN, RoI box head, projector, momentum copy) on ``--tiles`` tiles with
fixed selective-search proposals, once per candidate setting (one change each against the
recipe), and prints, averaged over the last quarter of the iterations:

- ``loss/chance``: ``loss_contrast`` over ``aligndet/contrast_chance`` (the loss of
  uninformative embeddings for the same RoIs); below 1 means a box's other view is preferred
  over the other boxes. Its floor is not 0: with cosine logits bounded by 1 / temperature,
  the best a query can do against ``N`` negatives is about ``log(1 + N exp(-1 / t))``, so at the
  recipe's t = 0.5 and ~270 negatives, ~0.65 of chance (printed as ``floor/chance``).
- ``top1`` (``aligndet/contrast_top1``): how often a query's most similar candidate is its own
  box in the other view, against its chance level; it does not depend on the temperature.

A candidate has **learned** the pretext task when its loss has gone at least
``LEARNED_PROGRESS`` of the way from chance to the floor and its top-1 rate is at least
``LEARNED_TOP1`` times its chance level; ``--check`` exits 1 otherwise (the learnability check of
a recipe change: ``--candidates recipe --iters 150 --size 256 --check``, ~1-2 s/iteration).

Each candidate draws the same tiles and view seeds. One process, run it alone:
``OMP_NUM_THREADS=1 python benchmarks/aligndet_pretext.py --iters 50 --size 256 --lr 0.01
--box-reg-weight 1 --candidates all`` (the diagnosis in docs/results/aligndet_deepforest.md;
``--lr 0.01 --box-reg-weight 1`` is the recipe before the diagnosis).
"""

import argparse
import json
import logging
import math
import statistics
import sys
import time
import warnings

import numpy as np
import torch
from detectron2.config import instantiate
from detectron2.data import DatasetCatalog
from detectron2.data import detection_utils as utils
from detectron2.utils.events import EventStorage
from torchvision.ops import nms

import freezedet  # noqa: F401  (registers datasets and components)
from freezedet.checkpoint import load_init_weights
from freezedet.data.proposals import generate_proposals, load_proposals_into_dicts
from freezedet.data.two_view import TwoViewProposalMapper
from freezedet.engine.defaults import build_optimizer
from freezedet.engine.ema import cosine_momentum, ema_update_
from freezedet.model_zoo import get_config

RECIPE = "DeepForest/aligndet_pretrain_faster_rcnn_fpn_effl0.py"
# the pretext task counts as learned when the loss has gone this fraction of the way from chance
# to its floor and the top-1 rate is this many times its chance level
LEARNED_PROGRESS = 0.25
LEARNED_TOP1 = 10.0


class PerViewClipMapper(TwoViewProposalMapper):
    """The mapper as it was before :func:`~freezedet.data.two_view.align_proposals`: each view
    clips the proposals to its own crop, so a box cut by one view's crop is paired with the
    whole box in the other view. Kept here only to measure that defect."""

    def __call__(self, dataset_dict):
        image = utils.read_image(dataset_dict["file_name"], format=self.image_format)
        boxes = np.asarray(dataset_dict["proposal_boxes"], np.float32).reshape(-1, 4)
        views, keep = [], np.ones(len(boxes), dtype=bool)
        for _ in range(2):
            im, transforms = self.draw_view(image)
            b = transforms.apply_box(boxes).reshape(-1, 4)
            b[:, [0, 2]] = b[:, [0, 2]].clip(0, im.shape[1])
            b[:, [1, 3]] = b[:, [1, 3]].clip(0, im.shape[0])
            keep &= ((b[:, 2] - b[:, 0]) >= self.min_size) & ((b[:, 3] - b[:, 1]) >= self.min_size)
            views.append((im, b))
        ids = np.nonzero(keep)[0][: self.max_proposals]
        return {"views": [self._to_model_input(im, b[ids], ids) for im, b in views]}


def _set(path, value):
    def apply(cfg):
        node = cfg
        *parents, leaf = path.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value

    return apply


def _base_momentum(value):
    def apply(cfg):
        cfg.train.extra_hooks[0].base_momentum = value

    return apply


def _no_flips(cfg):
    cfg.dataloader.train.mapper.augmentations = cfg.dataloader.train.mapper.augmentations[:2]


def _no_scale_crop(cfg):
    cfg.dataloader.train.mapper.augmentations = cfg.dataloader.train.mapper.augmentations[2:]


def _per_view_clip(cfg):
    cfg.dataloader.train.mapper._target_ = PerViewClipMapper


# name -> (what it tests, config changes, proposal NMS threshold or None)
CANDIDATES = {
    "recipe": ("the recipe as shipped", [], None),
    "per_view_clip": (
        "correspondence: each view clips its own crop (before the fix)",
        [_per_view_clip],
        None,
    ),
    "no_scale_crop": (
        "correspondence / scale: no scale jitter or crop (flips kept)",
        [_no_scale_crop],
        None,
    ),
    "no_flips": ("geometric invariance: no h/v flips", [_no_flips], None),
    "no_photometric": (
        "photometric ops: none",
        [_set("dataloader.train.mapper.photometric", [])],
        None,
    ),
    "proposals_nms05": ("overlapping proposals: NMS 0.5 on the cached proposals", [], 0.5),
    "contrast_proposals": (
        "RoI-to-instance matching: contrast the pseudo-boxes only",
        [_set("model.contrast_boxes", "proposals")],
        None,
    ),
    "neg_momentum": (
        "same-view negatives: momentum keys only",
        [_set("model.negatives", "momentum")],
        None,
    ),
    "temp_0.2": ("temperature 0.2", [_set("model.temperature", 0.2)], None),
    "projector_ln": ("projector: LayerNorm", [_set("model.projector_norm", "LN")], None),
    "momentum_0.99": ("momentum schedule: 0.99 -> 1", [_base_momentum(0.99)], None),
    "no_box_reg": (
        "box regression: off (contrast alone trains the box head)",
        [_set("model.detector.roi_heads.box_predictor.loss_weight", {"loss_box_reg": 0.0})],
        None,
    ),
    "momentum_0.9": ("momentum schedule: 0.9 -> 1", [_base_momentum(0.9)], None),
    "no_clip": (
        "no gradient clipping (official: none)",
        [_set("train.clip_grad.enabled", False)],
        None,
    ),
    "box_reg_1": (
        "box regression: weight 1 (AlignDet; the recipe's before the diagnosis)",
        [_set("model.detector.roi_heads.box_predictor.loss_weight", {"loss_box_reg": 1.0})],
        None,
    ),
    "lr_0.0025": (
        "lr 0.0025 (official per-image lr, the recipe's since the diagnosis)",
        [_set("optimizer.lr", 0.0025)],
        None,
    ),
}


def _tiles(n: int, cfg, proposal_file=None) -> list:
    """``n`` DeepForest tiles spread over the dataset, with their selective-search proposals:
    read from ``proposal_file`` (a ``tools/selective_search.py`` cache), or computed with the
    recipe's parameters."""
    records = DatasetCatalog.get("deepforest_all")
    records = [dict(r) for r in records[:: max(1, len(records) // n)][:n]]
    if proposal_file:
        return load_proposals_into_dicts(records, proposal_file)
    params = {
        k: v
        for k, v in dict(cfg.dataloader.proposals).items()
        if k in ("mode", "max_side", "min_size", "max_aspect_ratio", "nms_thresh", "topk", "seed")
    }
    for r in records:
        image = utils.read_image(r["file_name"], format="BGR")
        r["proposal_boxes"] = generate_proposals(image, **params)
    return records


def _nms(tiles, thresh):
    out = []
    for r in tiles:
        b = torch.as_tensor(r["proposal_boxes"])
        keep = nms(b, -torch.arange(len(b), dtype=torch.float32), thresh).sort().values
        out.append({**r, "proposal_boxes": b[keep].numpy()})
    kept = sum(len(r["proposal_boxes"]) for r in out) / sum(len(r["proposal_boxes"]) for r in tiles)
    print(f"NMS {thresh}: {kept:.0%} of the proposals kept")
    return out


def run(name, tiles, args) -> dict:
    _, changes, nms_thresh = CANDIDATES[name]
    cfg = get_config(RECIPE)
    aug = cfg.dataloader.train.mapper.augmentations
    aug[0].target_height = aug[0].target_width = args.size
    aug[1].crop_size = (args.size, args.size)
    if args.lr is not None:
        cfg.optimizer.lr = args.lr
    if args.box_reg_weight is not None:
        _set(
            "model.detector.roi_heads.box_predictor.loss_weight",
            {"loss_box_reg": args.box_reg_weight},
        )(cfg)
    for change in changes:
        change(cfg)
    base_momentum = cfg.train.extra_hooks[0].base_momentum
    if nms_thresh is not None:
        tiles = _nms(tiles, nms_thresh)
    torch.manual_seed(args.seed)
    model = instantiate(cfg.model)
    load_init_weights(model, cfg.train.init_checkpoint)
    for key, online in model.momentum_pairs_online().items():
        ema_update_(model.momentum[key], online, 0.0)
    model.train()
    optimizer = build_optimizer(cfg, model)
    base_lr = [g["lr"] for g in optimizer.param_groups]
    mapper = instantiate(cfg.dataloader.train.mapper)
    rng = np.random.RandomState(args.seed)
    rows = []
    start = time.perf_counter()
    for it in range(args.iters):
        np.random.seed(args.seed * 100003 + it)  # the mapper's draws: same views per candidate
        batch = [mapper(dict(tiles[i])) for i in rng.choice(len(tiles), 2, replace=False)]
        warm = min(1.0, (it + 1) / args.warmup)
        for g, lr in zip(optimizer.param_groups, base_lr):
            g["lr"] = lr * warm
        with EventStorage(it) as storage:
            losses = model(batch)
            stats = {k: h.latest() for k, h in storage.histories().items()}
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        optimizer.step()
        m = cosine_momentum(base_momentum, it + 1, args.schedule_iters)
        for key, online in model.momentum_pairs_online().items():
            ema_update_(model.momentum[key], online, m)
        rows.append({**{k: float(v.detach()) for k, v in losses.items()}, **stats})
        if args.verbose and (it + 1) % 20 == 0:
            r = rows[-1]
            print(
                f"  {name} it {it + 1}: loss/chance "
                f"{r['loss_contrast'] / r['aligndet/contrast_chance']:.3f} top1 "
                f"{r['aligndet/contrast_top1']:.3f}",
                flush=True,
            )
    s_iter = (time.perf_counter() - start) / args.iters
    tail = rows[-max(1, args.iters // 4) :]

    def mean(key):
        return statistics.fmean(r[key] for r in tail)

    n_neg = math.exp(mean("aligndet/contrast_chance")) - 1
    t = model.temperature
    floor = math.log1p(n_neg * math.exp(-1.0 / t))
    loss_ratio = mean("loss_contrast") / mean("aligndet/contrast_chance")
    progress = (1 - loss_ratio) / (1 - floor / mean("aligndet/contrast_chance"))
    learned = progress >= LEARNED_PROGRESS and (
        mean("aligndet/contrast_top1") >= LEARNED_TOP1 * mean("aligndet/contrast_top1_chance")
    )
    return {
        "candidate": name,
        "learned": bool(learned),
        "progress": progress,
        "what": CANDIDATES[name][0],
        "iters": args.iters,
        "loss_contrast": mean("loss_contrast"),
        "chance": mean("aligndet/contrast_chance"),
        "loss/chance": mean("loss_contrast") / mean("aligndet/contrast_chance"),
        "floor/chance": floor / mean("aligndet/contrast_chance"),
        "top1": mean("aligndet/contrast_top1"),
        "top1_chance": mean("aligndet/contrast_top1_chance"),
        "loss_box_reg": mean("loss_box_reg"),
        "loss_rpn_cls": mean("loss_rpn_cls"),
        "rois_per_image": mean("aligndet/rois_per_image"),
        "s_per_iter": s_iter,
        "curve": [
            [i, r["loss_contrast"] / r["aligndet/contrast_chance"], r["aligndet/contrast_top1"]]
            for i, r in enumerate(rows)
        ],
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--candidates", default="recipe", help=f"comma list or 'all': {list(CANDIDATES)}"
    )
    p.add_argument("--iters", type=int, default=120)
    p.add_argument("--tiles", type=int, default=4)
    p.add_argument("--size", type=int, default=400, help="view size (the recipe: 400, the tile)")
    p.add_argument("--warmup", type=int, default=20, help="linear lr warm-up iterations")
    p.add_argument(
        "--schedule-iters", type=int, default=600, help="length the momentum schedule assumes"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--lr", type=float, default=None, help="base lr of every candidate (the recipe's)"
    )
    p.add_argument(
        "--box-reg-weight", type=float, default=None, help="RoI box loss weight of every candidate"
    )
    p.add_argument("--check", action="store_true", help="exit 1 unless every candidate learned")
    p.add_argument("--verbose", action="store_true", help="print every 20 iterations")
    p.add_argument("--proposals", default=None, help="a proposal cache (default: compute them)")
    p.add_argument("--output", default=None, help="append one json line per candidate")
    args = p.parse_args()
    torch.set_num_threads(1)
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    logging.getLogger("freezedet").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    names = list(CANDIDATES) if args.candidates == "all" else args.candidates.split(",")
    unknown = set(names) - set(CANDIDATES)
    assert not unknown, f"unknown candidates {sorted(unknown)}; known: {list(CANDIDATES)}"
    tiles = _tiles(args.tiles, get_config(RECIPE), args.proposals)
    print(
        f"{'candidate':<20} {'loss/chance':>11} {'floor/ch':>8} {'top1':>6} {'top1 ch':>7} "
        f"{'box_reg':>7} {'RoIs/im':>7} {'s/iter':>6}",
        flush=True,
    )
    failed = 0
    for name in names:
        r = run(name, tiles, args)
        print(
            f"{name:<20} {r['loss/chance']:>11.3f} {r['floor/chance']:>8.3f} {r['top1']:>6.3f} "
            f"{r['top1_chance']:>7.3f} {r['loss_box_reg']:>7.3f} {r['rois_per_image']:>7.1f} "
            f"{r['s_per_iter']:>6.2f} {'learned' if r['learned'] else 'NOT learned'}",
            flush=True,
        )
        failed += not r["learned"]
        if args.output:
            with open(args.output, "a") as f:
                f.write(json.dumps(r) + "\n")
    return int(args.check and failed > 0)


if __name__ == "__main__":
    sys.exit(main())
