"""AlignDet pre-training checkpoint -> detector initialisation.

A checkpoint of :class:`freezedet.modeling.meta_arch.AlignDetPretrainer` holds the online
detector under GeneralizedRCNN's names plus ``momentum.*``, ``projector.*`` and ``predictor.*``.
:func:`aligndet_to_detector` keeps what a detector fine-tunes from -- trunk (unchanged ImageNet
weights when it was frozen), neck, RPN, RoI box head(s) and class-agnostic box regressor(s) --
and drops the pre-training-only heads and the class-specific classifier(s) (``cls_score``), which
the detector then keeps at their fresh initialisation. It returns a report listing exactly which
keys went where. :func:`load_init_weights`, the step that loads ``train.init_checkpoint``, applies
it when that is an AlignDet checkpoint and logs the report.
"""

import logging
from collections import OrderedDict
from typing import Dict, Mapping, Optional, Sequence, Tuple

from .checkpointer import AtomicDetectionCheckpointer

__all__ = [
    "HEAD_COMPONENTS",
    "is_aligndet_checkpoint",
    "aligndet_to_detector",
    "format_transfer_report",
    "InitWeightsCheckpointer",
    "load_init_weights",
]


PRETRAIN_ONLY = ("momentum.", "projector.", "predictor.")
# what a fine-tuned detector can take from pre-training; the trunk always transfers (it is the
# unchanged ImageNet trunk when pre-training kept it frozen)
HEAD_COMPONENTS = ("neck", "rpn", "roi_heads")


def is_aligndet_checkpoint(state_dict: Mapping) -> bool:
    """Whether a model state dict comes from an AlignDetPretrainer (it has a momentum copy)."""
    return any(k.startswith("momentum.") for k in state_dict)


def _component(key: str) -> Optional[str]:
    if key.startswith("backbone.bottom_up."):
        return "trunk"
    if key.startswith("backbone."):
        return "neck"
    if key.startswith("proposal_generator."):
        return "rpn"
    if key.startswith("roi_heads."):
        return "roi_heads"
    return None


def aligndet_to_detector(
    state_dict: Mapping,
    model_state_dict: Optional[Mapping] = None,
    components: Sequence[str] = HEAD_COMPONENTS,
) -> Tuple["OrderedDict", Dict[str, dict]]:
    """Select the keys of an AlignDet state dict that initialise a detector.

    Args:
        state_dict: the pre-training checkpoint's ``"model"``.
        model_state_dict: the target detector's state dict; if given, keys it lacks or holds
            with another shape are not transferred (listed under ``"skipped"``).
        components: which of ``HEAD_COMPONENTS`` transfer; the others keep the detector's fresh
            initialisation (listed under ``"skipped"`` as "not selected"). On DeepForest, neck +
            RPN transferred at parity while the pre-trained RoI box head hurt
            (docs/results/aligndet_deepforest.md), so the choice is the user's.

    Returns:
        (detector_state_dict, report): report maps ``"transferred"`` to
        ``{component: [keys]}`` (trunk, neck, rpn, roi_heads), ``"reinitialized"`` to the
        class-specific predictor keys dropped, ``"skipped"`` to ``{reason: [keys]}``.
    """
    unknown = sorted(set(components) - set(HEAD_COMPONENTS))
    if unknown:
        raise ValueError(
            f"AlignDet transfer components {unknown} are not among {list(HEAD_COMPONENTS)} "
            "(train.aligndet_transfer); the trunk always transfers."
        )
    out = OrderedDict()
    transferred = {"trunk": [], "neck": [], "rpn": [], "roi_heads": []}
    reinit, skipped = [], {}
    for key, value in state_dict.items():
        comp = _component(key)
        if comp is None:
            reason = next(
                (p[:-1] for p in PRETRAIN_ONLY if key.startswith(p)), "not a detector key"
            )
            skipped.setdefault(reason, []).append(key)
            continue
        if comp != "trunk" and comp not in components:
            skipped.setdefault("not selected", []).append(key)
            continue
        if ".cls_score." in key or (".bbox_pred." in key and value.shape[0] not in (4,)):
            # the classifier (and a class-specific regressor) belongs to the pseudo-class
            # "object" of pre-training: the fine-tuned detector learns its own
            reinit.append(key)
            continue
        if model_state_dict is not None:
            if key not in model_state_dict:
                skipped.setdefault("not in the detector", []).append(key)
                continue
            if tuple(model_state_dict[key].shape) != tuple(value.shape):
                skipped.setdefault("shape differs in the detector", []).append(key)
                continue
        out[key] = value
        transferred[comp].append(key)
    return out, {"transferred": transferred, "reinitialized": reinit, "skipped": skipped}


def format_transfer_report(report: Dict[str, dict]) -> str:
    """Counts per component, then every key, for the loading log."""
    t = report["transferred"]
    lines = [
        "AlignDet checkpoint -> detector: transferred "
        + ", ".join(f"{comp} {len(keys)}" for comp, keys in t.items())
        + f" keys; re-initialised {len(report['reinitialized'])} (class-specific predictor); "
        + "skipped "
        + (", ".join(f"{r} {len(k)}" for r, k in report["skipped"].items()) or "0")
    ]
    for comp, keys in t.items():
        lines.append(f"  transferred {comp} ({len(keys)}): {', '.join(keys)}")
    lines.append(
        f"  re-initialised ({len(report['reinitialized'])}): " + ", ".join(report["reinitialized"])
    )
    for reason, keys in report["skipped"].items():
        lines.append(f"  skipped, {reason} ({len(keys)})")
    return "\n".join(lines)


class InitWeightsCheckpointer(AtomicDetectionCheckpointer):
    """Loads a detector's initial weights (``train.init_checkpoint``): an AlignDet pre-training
    checkpoint is first reduced to what transfers (:func:`aligndet_to_detector`, restricted to
    ``aligndet_transfer``) and the transfer report is logged and kept in ``transfer_report``;
    any other checkpoint loads as with :class:`AtomicDetectionCheckpointer`."""

    def __init__(self, model, *, aligndet_transfer: Optional[Sequence[str]] = None):
        """
        Args:
            model (nn.Module): the detector (or its DDP wrapper).
            aligndet_transfer (list[str] or None): ``HEAD_COMPONENTS`` that transfer from an
                AlignDet checkpoint (``train.aligndet_transfer``); None: all of them.
        """
        super().__init__(model)
        self.aligndet_transfer = HEAD_COMPONENTS if aligndet_transfer is None else aligndet_transfer
        self.transfer_report = None

    def _load_model(self, checkpoint):
        model_sd = self.model.state_dict()
        if is_aligndet_checkpoint(checkpoint["model"]) and not is_aligndet_checkpoint(model_sd):
            checkpoint["model"], self.transfer_report = aligndet_to_detector(
                checkpoint["model"], model_sd, self.aligndet_transfer
            )
            logging.getLogger(__name__).info(format_transfer_report(self.transfer_report))
        return super()._load_model(checkpoint)


def load_init_weights(model, path: str, *, aligndet_transfer=None) -> InitWeightsCheckpointer:
    """The explicit load step of a fresh run (and of ``--eval-only``): ``path`` into ``model``
    through :class:`InitWeightsCheckpointer`; returns it (``last_load_stats``,
    ``transfer_report``). An empty ``path`` leaves the model's initialisation as it is."""
    checkpointer = InitWeightsCheckpointer(model, aligndet_transfer=aligndet_transfer)
    checkpointer.load(path)
    return checkpointer
