"""Checkpoints that survive a kill: every file is written to a temp file and renamed into place."""

import logging
import os

from detectron2.checkpoint import DetectionCheckpointer

from ..utils.file_io import atomic_torch_save, atomic_write_text

__all__ = ["AtomicDetectionCheckpointer"]


class AtomicDetectionCheckpointer(DetectionCheckpointer):
    """detectron2's ``DetectionCheckpointer`` with atomic ``save`` and ``last_checkpoint`` tag.

    A kill during a save leaves the previous checkpoint and ``last_checkpoint`` intact, so
    ``--resume`` always finds a complete file. Loading also logs how many checkpoint keys
    matched the model, so a wrong weights file is obvious.

    An AlignDet pre-training checkpoint loaded into a detector keeps only what transfers
    (:func:`freezedet.checkpoint.aligndet.aligndet_to_detector`), restricted to
    ``aligndet_transfer`` (``train.aligndet_transfer``; default: neck, RPN and RoI heads).

    ``before_save`` runs at the start of every save that writes a file: ``do_train`` flushes
    ``metrics.json`` there, so no checkpoint on disk is newer than the logged metrics
    (:mod:`freezedet.engine.writers`).
    """

    def __init__(
        self, model, save_dir="", *, aligndet_transfer=None, before_save=None, **checkpointables
    ):
        super().__init__(model, save_dir, **checkpointables)
        self.aligndet_transfer = aligndet_transfer
        self.before_save = before_save

    def save(self, name: str, **kwargs):
        if not self.save_dir or not self.save_to_disk:
            return
        if self.before_save is not None:
            self.before_save()
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info("Saving checkpoint to {}".format(save_file))
        atomic_torch_save(data, save_file)
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str):
        atomic_write_text(last_filename_basename, os.path.join(self.save_dir, "last_checkpoint"))

    def load(self, path, *args, **kwargs):
        if path and not self.path_manager.exists(path) and "://" not in path:
            raise FileNotFoundError(
                f"checkpoint {path!r} does not exist. Check train.init_checkpoint: convert "
                "ImageNet weights with tools/convert_pretrained.py, or, for a recipe that starts "
                "from another run's model_final.pth (LVIS stage 2, AlignDet fine-tuning), train "
                "that run first."
            )
        return super().load(path, *args, **kwargs)

    def _load_model(self, checkpoint):
        model_keys = set(self.model.state_dict().keys())
        self._maybe_transfer_aligndet(checkpoint)
        ckpt_keys = set(checkpoint["model"].keys())
        incompatible = super()._load_model(checkpoint)
        # counts after detectron2's own renaming (model-zoo heuristics, prefixes)
        missing = len(incompatible.missing_keys)
        unexpected = len(incompatible.unexpected_keys)
        logging.getLogger(__name__).info(
            f"Loaded checkpoint: {len(model_keys) - missing}/{len(model_keys)} model keys matched, "
            f"{missing} missing, {unexpected} unexpected (of {len(ckpt_keys)} checkpoint keys)."
        )
        self.last_missing_keys = sorted(incompatible.missing_keys)
        self.last_load_stats = {
            "matched": len(model_keys) - missing,
            "missing": missing,
            "unexpected": unexpected,
            "checkpoint_keys": len(ckpt_keys),
        }
        return incompatible

    def _maybe_transfer_aligndet(self, checkpoint):
        """An AlignDet pre-training checkpoint loaded into a detector: keep what transfers."""
        from ..checkpoint.aligndet import (
            aligndet_to_detector,
            format_transfer_report,
            is_aligndet_checkpoint,
        )

        model_sd = self.model.state_dict()
        if not is_aligndet_checkpoint(checkpoint["model"]) or is_aligndet_checkpoint(model_sd):
            return
        components = self.aligndet_transfer
        checkpoint["model"], report = aligndet_to_detector(
            checkpoint["model"],
            model_sd,
            **({} if components is None else {"components": components}),
        )
        logging.getLogger(__name__).info(format_transfer_report(report))
        self.last_transfer_report = report
