"""Checkpoints that survive a kill: every file is written to a temp file and renamed into place."""

import logging
import os
import re

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import hooks

from ..utils.errors import UserFileNotFoundError
from ..utils.file_io import atomic_torch_save, atomic_write_text

__all__ = ["AtomicDetectionCheckpointer", "PeriodicCheckpointer"]


class AtomicDetectionCheckpointer(DetectionCheckpointer):
    """detectron2's ``DetectionCheckpointer`` with atomic ``save`` and ``last_checkpoint`` tag.

    A kill during a save leaves the previous checkpoint and ``last_checkpoint`` intact, so
    ``--resume`` always finds a complete file. Loading also logs how many checkpoint keys
    matched the model, so a wrong weights file is obvious; the counts of the last load are kept
    in ``last_load_stats`` and the model keys it left uninitialised in ``last_missing_keys``.

    A checkpoint that initialises exactly one module of the model, all of it (an ImageNet trunk
    checkpoint for ``backbone.bottom_up``), leaves the rest (neck, heads) to its initialisation
    as intended: that is said in the same INFO line instead of detectron2's multi-line warning
    listing the missing keys, which stays for any other partial load.
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
            raise UserFileNotFoundError(
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
        covered = _covered_module(model_keys - set(incompatible.missing_keys))
        self._missing_expected = bool(covered) and not any(
            k.startswith(covered + ".") for k in incompatible.missing_keys
        )
        outside = sorted({k.split(".")[0] for k in incompatible.missing_keys})
        logging.getLogger(__name__).info(
            f"Loaded checkpoint: {len(model_keys) - missing}/{len(model_keys)} model keys matched, "
            f"{missing} missing, {unexpected} unexpected (of {len(ckpt_keys)} checkpoint keys)."
            + (
                f" It initialises {covered} (all of it); the {missing} missing keys (in "
                f"{', '.join(outside)}) keep their initialisation, as expected."
                if missing and self._missing_expected
                else ""
            )
        )
        self.last_missing_keys = sorted(incompatible.missing_keys)
        self.last_load_stats = {
            "matched": len(model_keys) - missing,
            "missing": missing,
            "unexpected": unexpected,
            "checkpoint_keys": len(ckpt_keys),
        }
        return incompatible

    def _log_incompatible_keys(self, incompatible):
        if getattr(self, "_missing_expected", False):  # said in _load_model's line
            incompatible = incompatible._replace(missing_keys=[])
        super()._log_incompatible_keys(incompatible)


def _covered_module(loaded_keys) -> str:
    """The deepest module (dotted name) holding every key of ``loaded_keys``; "" for none."""
    parts = [k.split(".")[:-1] for k in loaded_keys]
    if not parts:
        return ""
    common = []
    for names in zip(*parts):
        if any(n != names[0] for n in names):
            break
        common.append(names[0])
    return ".".join(common)


class PeriodicCheckpointer(hooks.PeriodicCheckpointer):
    """detectron2's ``PeriodicCheckpointer`` hook whose ``max_to_keep`` (``train.checkpointer``)
    also counts the periodic checkpoints that the run it resumes saved: detectron2 counts only
    the ones it saved itself, so every ``--resume`` left all earlier checkpoints on disk."""

    def before_train(self):
        super().before_train()
        if self.max_to_keep is None or not self.checkpointer.save_dir:
            return
        directory = self.checkpointer.save_dir
        pattern = re.compile(re.escape(self.file_prefix) + r"_(\d{7})\.pth$")
        found = []
        for name in os.listdir(directory) if os.path.isdir(directory) else []:
            m = pattern.match(name)
            # a run starting at 0 overwrites a directory's checkpoints: count none of them
            if m and int(m[1]) < self.trainer.start_iter:
                found.append((int(m[1]), os.path.join(directory, name)))
        self.recent_checkpoints = [path for _, path in sorted(found)]
        while len(self.recent_checkpoints) > self.max_to_keep:
            os.remove(self.recent_checkpoints.pop(0))
