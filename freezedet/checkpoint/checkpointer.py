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
    matched the model, so a wrong weights file is obvious; the counts of the last load are kept
    in ``last_load_stats`` and the model keys it left uninitialised in ``last_missing_keys``.
    """

    def save(self, name: str, **kwargs):
        if not self.save_dir or not self.save_to_disk:
            return
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
