"""Predicting with a trained LazyConfig model: detectron2's ``DefaultPredictor`` for freezedet.

``Predictor.from_config(run_dir)`` builds the model of a training run as it was trained (the
``config.yaml`` the run wrote, with every override it was trained with) and loads the run's
weights; ``Predictor.from_config(config, weights)`` does the same for a LazyConfig and a
checkpoint (or a training output directory's final / last checkpoint). The class names come from
the config's test dataset without loading it (registered metadata, or the categories of its json
file), so predicting never reads or checks the dataset's images. Each image is prepared as the
config's test data loader does: read and converted by
:func:`~freezedet.data.image_io.read_image_for_model` in the mapper's image format, transformed
by the test mapper's augmentations (e.g. ``ResizeShortestEdge``), outputs rescaled to the
original image. Images go through the model in batches of same-size images; with ``tile_size``
every image is predicted tile by tile (:mod:`freezedet.inference.tiling`).
"""

import copy
import json
import logging
import os
from typing import Iterable, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch

import detectron2.data.transforms as T
from detectron2.config import LazyConfig, instantiate
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.catalog import Metadata
from detectron2.structures import Instances
from detectron2.utils.file_io import PathManager

from ..checkpoint import load_init_weights
from ..config import load_config, resolve_run, run_weights, select_trunk_and_mode
from ..data.image_io import read_image_for_model
from ..engine.defaults import build_model, build_tta_model
from ..utils.errors import UserFileNotFoundError, UserValueError
from .export import EXPORT_FORMATS, ExportedModel
from .tiling import MERGE_METHODS, image_tiles, in_core, merge_detections, shift_instances
from .tta import DihedralTTA

__all__ = ["Predictor", "resolve_weights", "config_metadata"]

logger = logging.getLogger(__name__)

ImageLike = Union[str, os.PathLike, np.ndarray]


def resolve_weights(weights: str) -> str:
    """A checkpoint file; for a training output directory its ``model_final.pth``, else the
    checkpoint its ``last_checkpoint`` names. ``scheme://`` paths are passed on unchanged."""
    if not weights:
        raise UserValueError(
            "no weights given: pass a checkpoint file or a training output directory"
        )
    weights = os.fspath(weights)
    if "://" in weights:
        return weights
    if os.path.isdir(weights):
        return run_weights(weights)
    if not os.path.isfile(weights):
        raise UserFileNotFoundError(
            f"weights {weights} do not exist (a .pth file or an output dir)"
        )
    return weights


def _test_dataset_name(cfg) -> Optional[str]:
    evaluator = cfg.dataloader.get("evaluator", None)
    name = evaluator.get("dataset_name", None) if evaluator is not None else None
    if name is None:
        dataset = cfg.dataloader.test.dataset
        name = dataset.get("names", None) or dataset.get("name", None)
    if name is not None and not isinstance(name, str):
        name = name[0]
    return name


def _json_categories(json_file: str) -> dict:
    """``thing_classes`` and ``thing_dataset_id_to_contiguous_id`` of a COCO json's categories,
    as detectron2's ``load_coco_json`` derives them (categories sorted by id)."""
    with PathManager.open(json_file) as f:
        categories = sorted(json.load(f)["categories"], key=lambda c: c["id"])
    return {
        "thing_classes": [c["name"] for c in categories],
        "thing_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(categories)},
    }


def config_metadata(cfg):
    """The ``Metadata`` (``thing_classes``, ``thing_dataset_id_to_contiguous_id``) of a config's
    test dataset, without loading or checking the dataset's images: the registered metadata
    (built-in datasets, DeepForest), else the categories of the dataset's ``json_file`` (a
    ``coco_json_dataset`` entry), else the records of a registered dataset (which set it)."""
    name = _test_dataset_name(cfg)
    if name is None:
        raise UserValueError("the config's dataloader.test.dataset has no dataset name")
    meta = MetadataCatalog.get(name)
    if meta.get("thing_classes", None):
        return meta
    json_file = cfg.dataloader.test.dataset.get("json_file", None)
    if json_file:
        return Metadata(name=name, json_file=json_file, **_json_categories(json_file))
    if name in DatasetCatalog.list():
        DatasetCatalog.get(name)  # raw records, not checked; detectron2's json loaders set them
    if not meta.get("thing_classes", None):
        raise UserValueError(
            f"dataset {name!r} has no thing_classes in its metadata (and the config's "
            "dataloader.test.dataset names no json_file to read the categories from)"
        )
    return meta


def _load_model(cfg, weights: str) -> torch.nn.Module:
    model = build_model(cfg)
    checkpointer = load_init_weights(model, weights)
    stats = getattr(checkpointer, "last_load_stats", {})
    if stats.get("missing"):
        logger.warning(
            f"{weights}: {stats['missing']} model weights are not in the checkpoint and keep "
            "their random initialisation; is it this config's trained checkpoint?"
        )
    return model


def _tta_model(cfg, model, views: Optional[int]):
    """``model`` in the config's ``tta`` node (its ``views`` replaced by ``views`` if given), or
    without one in :class:`DihedralTTA` with ``views`` (default 8) views."""
    if cfg.get("tta", None) is not None:
        if views is not None:
            cfg.tta.views = views
        return build_tta_model(cfg, model)
    views = 8 if views is None else views
    logger.info(
        f"test-time augmentation: the config has no tta node, so DihedralTTA(views={views}) "
        "(flips and quarter turns of each image, boxes fused; tta_views / --tta-views: 1, 2, 4 "
        "or 8)"
    )
    return DihedralTTA(model, views=views).eval()


def _num_classes(model) -> Optional[int]:
    heads = getattr(model, "roi_heads", None)
    return getattr(heads, "num_classes", None) or getattr(model, "num_classes", None)


class Predictor:
    """Predictions of a detector for images (files or arrays), whole or in tiles.

    ``predictor(image)`` returns the ``Instances`` of one image (``pred_boxes``, ``scores``,
    ``pred_classes``, and ``pred_masks`` for mask models, in original image coordinates, on the
    CPU); ``predictor(list_of_images)`` a list; :meth:`iter_predictions` yields them one image
    at a time. Arrays are (H, W, C) uint8 in ``input_format`` (see :meth:`read`).
    """

    def __init__(
        self,
        *,
        model: torch.nn.Module,
        input_format: str = "RGB",
        augmentations: Sequence[T.Augmentation] = (),
        metadata=None,
        config=None,
        batch_size: int = 4,
        score_threshold: float = 0.0,
        tile_size: Optional[int] = None,
        overlap: float = 0.25,
        merge: str = "nms",
        merge_iou: float = 0.5,
        tile_cores: bool = True,
        high_bit_depth: str = "error",
    ):
        """
        Args:
            model (nn.Module): a detectron2 meta-architecture (inputs: list of dicts with
                "image", "height", "width"; outputs: list of dicts with "instances").
            input_format (str): format the model's "image" tensors are in ("RGB", "BGR").
            augmentations (list[Augmentation]): the test-time transforms of the evaluation
                mapper (e.g. ``ResizeShortestEdge``); outputs are mapped back to the original.
            metadata (Metadata or None): dataset metadata (class names, json category ids).
            config (DictConfig or None): the LazyConfig the model was built from
                (:meth:`from_config` sets it), e.g. for its test dataset.
            batch_size (int): images (or tiles) per model call; only same-size images share a
                call, so batching never changes what an image is padded to.
            score_threshold (float): drop detections scoring less (the model's own test
                threshold applies first).
            tile_size (int or None): predict every image in tiles of this size (px), for images
                larger than the training images; None: whole images.
            overlap (float): fraction of a tile shared with its neighbour, in [0, 1).
            merge (str): merging of detections across tiles: "nms" or "wbf" (box fusion).
            merge_iou (float): IoU above which detections of neighbouring tiles are merged.
            tile_cores (bool): keep a tile's detection only if its centre lies in the tile's
                core (see :mod:`freezedet.inference.tiling`); False: merge everything.
            high_bit_depth (str): how image files of more than 8 bits per channel are
                converted (:mod:`freezedet.data.bit_depth`); :meth:`from_config` takes the
                test dataset's rule.
        """
        assert batch_size >= 1, f"batch_size={batch_size} must be >= 1"
        assert merge in MERGE_METHODS, f"merge={merge!r} is not one of {MERGE_METHODS}"
        assert 0 <= overlap < 1, f"overlap={overlap} must be in [0, 1)"
        assert tile_size is None or tile_size > 0, f"tile_size={tile_size} must be positive"
        self.model = model.eval()
        self.input_format = input_format
        self.augmentations = T.AugmentationList(list(augmentations))
        self.metadata = metadata
        self.config = config
        self.batch_size = batch_size
        self.score_threshold = score_threshold
        self.tile_size = tile_size
        self.overlap = overlap
        self.merge = merge
        self.merge_iou = merge_iou
        self.tile_cores = tile_cores
        self.high_bit_depth = high_bit_depth

    @classmethod
    def from_config(
        cls,
        config,
        weights=None,
        *,
        opts: Sequence[str] = (),
        device=None,
        tta=False,
        tta_views: Optional[int] = None,
        **options,
    ):
        """A predictor for a training run, or a LazyConfig model and its trained weights.

        Args:
            config (str or DictConfig): a training run's output directory (its ``config.yaml``,
                the config exactly as trained, and its weights), a config file, a config
                shipped with freezedet ("DeepForest/faster_rcnn_fpn.py") or a loaded config.
            weights (str or None): a checkpoint, a training output directory (its
                ``model_final.pth``, else its last checkpoint), or an exported model (``.ts``
                TorchScript, ``.onnx``; see :mod:`freezedet.inference.export`); None: the
                weights of the run directory ``config``.
            opts (list[str]): ``key=value`` config overrides, as for ``tools/train_net.py``.
            device (str or None): "cpu", "cuda", ...; None: the config's ``train.device``
                (CUDA if available); for a run directory, CUDA if available here.
            tta (bool): predict with test-time augmentation: the config's ``tta`` node, or,
                without one, :class:`~freezedet.inference.tta.DihedralTTA` (the flips and
                rotations of the square); not for exported models.
            tta_views (int or None): views of the dihedral TTA (1, 2, 4, 8); None: the tta
                node's, or 8.
            options: keyword arguments of :class:`Predictor` (``batch_size``,
                ``score_threshold``, ``tile_size``, ``overlap``, ``merge`` ...).
        """
        if isinstance(config, (str, os.PathLike)):
            config_file, run_weights_file = resolve_run(os.fspath(config))
            if weights is None:
                if run_weights_file is None:
                    raise UserValueError(
                        f"no weights: {config} is not a training run's output directory with a "
                        "checkpoint; pass the weights (a .pth file or a run directory)"
                    )
                weights = run_weights_file
            if device is None and os.path.isdir(os.fspath(config)):
                device = _default_device()  # the run's train.device is the training machine's
            cfg = load_config(config_file, list(opts))
        else:
            cfg = copy.deepcopy(config)
            # trunk.name= / trunk.mode= first, as load_config does (freezedet.config)
            opts = select_trunk_and_mode(cfg, list(opts), "<the given config>")
            cfg = LazyConfig.apply_overrides(cfg, opts)
        cfg.train.device = device or cfg.train.get("device", None) or _default_device()
        if str(cfg.train.device).startswith("cuda") and not torch.cuda.is_available():
            raise UserValueError(f"device {cfg.train.device!r}, but CUDA is not available here")
        weights = resolve_weights(weights)  # before building: a wrong path fails fast
        if os.path.splitext(weights)[1] in EXPORT_FORMATS.values():
            model = ExportedModel(path=weights, device=cfg.train.device)
        else:
            model = _load_model(cfg, weights)
        mapper = cfg.dataloader.test.mapper
        metadata = config_metadata(cfg)
        n = _num_classes(model)
        classes = metadata.get("thing_classes")
        assert n is None or n == len(classes), (
            f"the model predicts {n} classes but its test dataset {metadata.name!r} has "
            f"{len(classes)}: {classes}"
        )
        if tta:
            if isinstance(model, ExportedModel):
                raise UserValueError(
                    f"tta: {weights} is an exported model; predict it without --tta"
                )
            model = _tta_model(cfg, model, tta_views)
        return cls(
            model=model,
            input_format=mapper.get("image_format", None) or cfg.model.input_format,
            augmentations=[instantiate(a) for a in mapper.get("augmentations", None) or []],
            metadata=metadata,
            config=cfg,
            **{
                "high_bit_depth": cfg.dataloader.test.dataset.get("high_bit_depth", "error"),
                **options,
            },
        )

    @property
    def class_names(self) -> Optional[List[str]]:
        return self.metadata.get("thing_classes", None) if self.metadata is not None else None

    def read(self, path: Union[str, os.PathLike]) -> np.ndarray:
        """An image file as the model's input array (:func:`read_image_for_model`)."""
        return read_image_for_model(os.fspath(path), self.input_format, self.high_bit_depth)

    def __call__(self, images):
        if isinstance(images, (str, os.PathLike, np.ndarray)):
            return next(self.iter_predictions([images]))
        return list(self.iter_predictions(images))

    def iter_predictions(self, images: Iterable[ImageLike]) -> Iterator[Instances]:
        """Predictions for ``images`` in order, one image at a time (files are read lazily)."""
        arrays = (self.read(im) if not isinstance(im, np.ndarray) else im for im in images)
        if self.tile_size:
            for image in arrays:
                yield self.predict_tiled(image)
            return
        batch = []
        for image in arrays:
            item = self.preprocess(image)
            if batch and (len(batch) == self.batch_size or _shape(batch[0]) != _shape(item)):
                yield from self._run(batch)
                batch = []
            batch.append(item)
        if batch:
            yield from self._run(batch)

    def predict_tiled(self, image: np.ndarray) -> Instances:
        """Detections of one (large) image predicted in tiles of ``tile_size``, merged across
        tile borders (:mod:`freezedet.inference.tiling`)."""
        assert self.tile_size, "predict_tiled needs a predictor with a tile_size"
        height, width = image.shape[:2]
        tiles = list(image_tiles(image, self.tile_size, self.overlap))
        parts = []
        for start in range(0, len(tiles), self.batch_size):
            batch = tiles[start : start + self.batch_size]
            outputs = self._run([self.preprocess(np.ascontiguousarray(t)) for t, _, _ in batch])
            for (_, (x, y), core), inst in zip(batch, outputs):
                if self.tile_cores:
                    x0, y0, x1, y1 = core
                    inst = inst[in_core(inst, (x0 - x, y0 - y, x1 - x, y1 - y))]
                parts.append(shift_instances(inst, (x, y), (height, width)))
        if len(parts) == 1:  # nothing to merge: exactly the untiled prediction
            return parts[0]
        return merge_detections(Instances.cat(parts), self.merge, self.merge_iou)

    def preprocess(self, image: np.ndarray) -> dict:
        """The model's input dict for an (H, W, C) uint8 image in ``input_format``: the test
        transforms applied, "height" / "width" the original size (outputs are mapped back)."""
        assert image.ndim == 3 and image.dtype == np.uint8, (
            f"expected an (H, W, C) uint8 image in {self.input_format}, got "
            f"{image.dtype} {image.shape}"
        )
        height, width = image.shape[:2]
        aug = T.AugInput(image)
        self.augmentations(aug)
        tensor = torch.as_tensor(np.ascontiguousarray(aug.image.transpose(2, 0, 1)))
        return {"image": tensor, "height": height, "width": width}

    @torch.no_grad()
    def _run(self, inputs: List[dict]) -> List[Instances]:
        outputs = self.model(inputs)
        results = []
        for out in outputs:
            inst = out["instances"].to("cpu")
            if self.score_threshold > 0:
                inst = inst[inst.scores >= self.score_threshold]
            results.append(inst)
        return results


def _shape(item: dict):
    return tuple(item["image"].shape), item["height"], item["width"]


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
