"""Evaluation of a model on ``cfg.dataloader.test`` with ``cfg.dataloader.evaluator``: what
``--eval-only`` and detectron2's ``EvalHook`` during training run; and, where a recipe sets a
top-level ``tta`` node (e.g. ``tta = L(DihedralTTA)(views=8)``), the same evaluation of the model
wrapped in it, once after training and with ``--eval-only`` (its results keyed ``"<task>_TTA"``,
as detectron2's ``DefaultTrainer.test_with_TTA``)."""

import logging
import os

from detectron2.config import instantiate
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm

from ..evaluation import PerHeadEvaluator
from ..modeling.meta_arch import SharedTrunkDetectors
from .defaults import build_tta_model
from .loaders import instantiate_loader
from .summary import check_classes, check_same_classes, model_detections_per_image

__all__ = ["check_test_data", "do_test", "do_test_tta", "has_tta"]

logger = logging.getLogger("freezedet")


def do_test(cfg, model):
    """Evaluate on ``cfg.dataloader.test`` with ``cfg.dataloader.evaluator``; returns metrics.

    A :class:`~freezedet.modeling.meta_arch.SharedTrunkDetectors` is evaluated in one pass over
    the data (one trunk pass per image, :meth:`~SharedTrunkDetectors.evaluating_all_heads`), each
    detector by its own instance of the evaluator (output dir ``<output_dir>/<head>``), its
    results keyed ``"<head>/<task>"``."""
    if "evaluator" not in cfg.dataloader:
        return {}
    inner = getattr(model, "module", model)  # DistributedDataParallel
    if isinstance(inner, SharedTrunkDetectors):
        return _test_each_head(cfg, model, inner)
    return _test_one(cfg, model)


def has_tta(cfg) -> bool:
    """Whether the config asks for a test-time-augmentation evaluation (a ``tta`` node)."""
    return cfg.get("tta", None) is not None


def do_test_tta(cfg, model):
    """Evaluate ``model`` wrapped in ``cfg.tta`` (whose ``model`` argument it fills); returns
    the metrics keyed ``"<task>_TTA"``, or {} when the config has no ``tta`` node."""
    if not has_tta(cfg) or "evaluator" not in cfg.dataloader:
        return {}
    inner = getattr(model, "module", model)
    if isinstance(inner, SharedTrunkDetectors):
        raise ValueError(
            "tta: test-time augmentation of a SharedTrunkDetectors model is not supported; "
            "evaluate each exported detector with tta instead, or set tta=None."
        )
    wrapped = build_tta_model(cfg, model)
    logger.info(f"evaluating with test-time augmentation: {type(wrapped).__name__}")
    results = _test_one(cfg, wrapped, output_subdir="inference_TTA")
    return {f"{task}_TTA": metrics for task, metrics in results.items()}


def check_test_data(cfg):
    """Load the test dataset and build the evaluator once before training, so that bad test data
    stops the run (or warns) at its start, not after training: unreadable test images, images
    whose size differs from the json's, ground-truth boxes no detection can match, more objects
    in an image than AP counts, a class count that disagrees with the model."""
    if "evaluator" not in cfg.dataloader:
        return
    test = cfg.dataloader.get("test", None)
    dataset = test.get("dataset", None) if test is not None else None
    if dataset is not None:
        instantiate(dataset)  # registers the evaluator's dataset; checks its images
        check_classes(cfg, dataset)
    evaluator_cfg = cfg.dataloader.evaluator.copy()
    evaluator_cfg.output_dir = _evaluator_output_dir(cfg)
    instantiate(evaluator_cfg)  # checks the ground truth it reads


def _evaluator_output_dir(cfg):
    # detectron2 caches the converted ground truth there for datasets not in COCO format
    return cfg.dataloader.evaluator.get("output_dir", None) or os.path.join(
        cfg.train.output_dir, "inference"
    )


def _test_loader(cfg):
    # first: it may register the evaluator's dataset
    loader = instantiate_loader(cfg.dataloader.test)
    check_classes(cfg, cfg.dataloader.test.get("dataset", None))
    check_same_classes(cfg)
    return loader


def _test_each_head(cfg, model, detectors: SharedTrunkDetectors):
    base = _evaluator_output_dir(cfg)
    loader = _test_loader(cfg)
    evaluators = {}
    for name in detectors.head_names:
        evaluator_cfg = cfg.dataloader.evaluator.copy()
        evaluator_cfg.output_dir = os.path.join(base, name)
        evaluators[name] = instantiate(evaluator_cfg)
    with detectors.evaluating_all_heads():
        return _inference(model, loader, PerHeadEvaluator(evaluators))


def _test_one(cfg, model, output_subdir=None):
    cfg.dataloader.evaluator.output_dir = _evaluator_output_dir(cfg)
    evaluator_cfg = cfg.dataloader.evaluator
    if output_subdir:  # predictions of a wrapped model go to their own directory
        evaluator_cfg = evaluator_cfg.copy()
        evaluator_cfg.output_dir = os.path.join(cfg.train.output_dir, output_subdir)
    loader = _test_loader(cfg)
    evaluator = instantiate(evaluator_cfg)
    counted = getattr(evaluator, "max_dets_per_image", None)  # freezedet's COCOEvaluator
    outputs = model_detections_per_image(cfg)
    if isinstance(counted, int) and outputs is not None and outputs < counted:
        logger.warning(
            f"AP counts up to {counted} detections per image but the model outputs at most "
            f"{outputs} (test_topk_per_image): on images with more objects AP is capped there."
        )
    return _inference(model, loader, evaluator)


def _inference(model, loader, evaluator):
    ret = inference_on_dataset(model, loader, evaluator)
    if comm.is_main_process() and ret:
        print_csv_format(ret)
    return ret
