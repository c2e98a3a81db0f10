"""Several detectors trained on one frozen trunk, for the price of one trunk pass.

A frozen classifier trunk ("Proper Reuse of Image Classification Features Improves Object
Detection", Vasconcelos et al., CVPR 2022) computes the same features for every detector put on
it. The paper's comparison of necks and heads (FPN, NAS-FPN, Cascade NAS-FPN, ...) therefore needs
the trunk only once per step: :class:`SharedTrunkDetectors` runs it once and trains K detectors
on its output in the same step, each with its own losses (``"<name>/loss_cls"``...), its own
stand-alone checkpoint (:meth:`SharedTrunkDetectors.head_state_dict`: a plain
``GeneralizedRCNN`` state dict) and its own evaluation (``eval_head``; within
:meth:`SharedTrunkDetectors.evaluating_all_heads` inference returns every head's outputs, which
``do_test`` in :mod:`freezedet.engine.evaluate` scores head by head).
"""

import contextlib
import os
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, GeneralizedRCNN
from detectron2.structures import ImageList

from ...model_zoo import get_config_file
from ...utils.file_io import atomic_torch_save
from ..neck._common import build_bottom_up

__all__ = ["ALL_HEADS", "SharedTrunkDetectors"]

ALL_HEADS = "*"  # eval_head value: inference returns {head name: outputs} for every image

_TRUNK_KEY = "backbone.bottom_up."  # where a GeneralizedRCNN keeps its trunk


class _SharedFeatures(Backbone):
    """Stands in for a detector's trunk: returns the features the shared trunk computed."""

    def __init__(self, *, trunk: Backbone):
        super().__init__()
        self._out_features = list(trunk._out_features)
        self._out_feature_channels = dict(trunk._out_feature_channels)
        self._out_feature_strides = dict(trunk._out_feature_strides)
        self._size_divisibility = trunk.size_divisibility
        self._padding_constraints = dict(trunk.padding_constraints)
        self.features: Optional[Dict[str, torch.Tensor]] = None

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    @property
    def padding_constraints(self) -> Dict[str, int]:
        return self._padding_constraints

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        assert self.features is not None, "the shared trunk has not run for this input"
        f = self._out_features[0]
        got = self.features[f].shape
        assert got[0] == x.shape[0] and got[-1] == -(
            -x.shape[-1] // self._out_feature_strides[f]
        ), f"shared features {tuple(got)} do not belong to input {tuple(x.shape)}"
        return self.features


@META_ARCH_REGISTRY.register()
class SharedTrunkDetectors(nn.Module):
    """K detectors (``GeneralizedRCNN``-like: ``backbone.bottom_up`` + neck, RPN, ROI heads) on one
    frozen trunk that runs once per step.

    All detectors see the input padded to the largest ``size_divisibility`` among their necks
    (e.g. 128 with NAS-FPN's P7). A stand-alone detector with a smaller one (FPN: 32) pads less;
    on inputs already divisible by the largest, their outputs are identical.

    Parameters: the trunk under ``trunk.``, detector k under ``detectors.k.`` (without its trunk).
    Checkpoints in the stand-alone layout (``backbone.bottom_up.*``, e.g. an ImageNet init
    checkpoint) load their trunk weights into ``trunk.``.

    yacs: ``MODEL.META_ARCHITECTURE: "SharedTrunkDetectors"`` with
    ``MODEL.FREEZEDET.SHARED_TRUNK.*`` (:meth:`from_config`).
    """

    @configurable
    def __init__(
        self,
        *,
        trunk: Backbone,
        detectors: Sequence[nn.Module],
        names: Sequence[str],
        eval_head: Optional[str] = None,
    ):
        """
        Args:
            trunk (Backbone): the shared trunk; must be frozen (no trainable parameters).
            detectors (Sequence[nn.Module]): detectors whose ``backbone.bottom_up`` has the
                trunk's outputs; their own trunks are dropped.
            names (Sequence[str]): one name per detector, used as loss prefix and for export.
            eval_head (str or None): the detector whose outputs inference returns (default:
                the first), or ``ALL_HEADS``: every detector's, as ``{name: outputs}`` per image.
        """
        super().__init__()
        assert len(detectors) == len(names) > 0, f"{len(detectors)} detectors, names {names}"
        assert len(set(names)) == len(names), f"names must be unique: {names}"
        assert ALL_HEADS not in names, f"{ALL_HEADS!r} is reserved (eval_head=ALL_HEADS)"
        trainable = [n for n, p in trunk.named_parameters() if p.requires_grad]
        if trainable:
            raise ValueError(
                f"SharedTrunkDetectors needs a frozen trunk; {len(trainable)} trunk parameters "
                f"train (e.g. {trainable[0]}). Use mode='frozen'."
            )
        first = detectors[0]
        for name, det in zip(names, detectors):
            if det.backbone.bottom_up.output_shape() != trunk.output_shape():
                raise ValueError(
                    f"detector {name!r} was built for trunk outputs "
                    f"{det.backbone.bottom_up.output_shape()}, the shared trunk gives "
                    f"{trunk.output_shape()}"
                )
            for attr in ("pixel_mean", "pixel_std"):
                if not torch.equal(getattr(det, attr), getattr(first, attr)):
                    raise ValueError(f"detector {name!r}: {attr} differs from {names[0]!r}'s")
            det.backbone.bottom_up = _SharedFeatures(trunk=trunk)
        self.trunk = trunk
        self.size_divisibility = max(d.backbone.size_divisibility for d in detectors)
        self.detectors = nn.ModuleList(detectors)
        self.head_names = list(names)
        self.eval_head = eval_head
        self._register_load_state_dict_pre_hook(self._load_trunk_from_standalone_layout)

    @classmethod
    def from_config(cls, cfg):
        """yacs: the trunk from ``MODEL.FREEZEDET.BOTTOM_UP``; detector k from the YAML
        ``MODEL.FREEZEDET.SHARED_TRUNK.DETECTORS[k]`` (a path, or a config shipped with freezedet
        such as ``"yacs/faster_rcnn_fpn_effl0_frozen.yaml"``) merged over ``cfg``, with this
        cfg's ``MODEL.FREEZEDET.TRUNK`` and pixel statistics (the trunk they share)."""
        s = cfg.MODEL.FREEZEDET.SHARED_TRUNK
        if not s.DETECTORS or len(s.DETECTORS) != len(s.NAMES):
            raise ValueError(
                f"MODEL.FREEZEDET.SHARED_TRUNK.DETECTORS ({list(s.DETECTORS)}) and NAMES "
                f"({list(s.NAMES)}) must name the same number (> 0) of detectors"
            )
        detectors = []
        for path in s.DETECTORS:
            sub = cfg.clone()
            sub.defrost()
            sub.merge_from_file(path if os.path.exists(path) else get_config_file(path))
            sub.MODEL.FREEZEDET.TRUNK = cfg.MODEL.FREEZEDET.TRUNK.clone()
            sub.MODEL.PIXEL_MEAN, sub.MODEL.PIXEL_STD = cfg.MODEL.PIXEL_MEAN, cfg.MODEL.PIXEL_STD
            arch = sub.MODEL.META_ARCHITECTURE
            if arch == cls.__name__:
                raise ValueError(
                    f"MODEL.FREEZEDET.SHARED_TRUNK.DETECTORS: {path} sets no detector "
                    f"MODEL.META_ARCHITECTURE (it is {arch!r})"
                )
            detectors.append(META_ARCH_REGISTRY.get(arch)(sub))
        return {
            "trunk": build_bottom_up(cfg, ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN))),
            "detectors": detectors,
            "names": list(s.NAMES),
            "eval_head": s.EVAL_HEAD or None,
        }

    @property
    def device(self):
        return self.detectors[0].device

    def _preprocess(self, batched_inputs) -> ImageList:
        # every detector sees the input padded for the most demanding neck (NAS-FPN's P7: 128),
        # so one trunk pass serves them all
        det = self.detectors[0]
        images = [
            (x["image"].to(det.device) - det.pixel_mean) / det.pixel_std for x in batched_inputs
        ]
        return ImageList.from_tensors(images, self.size_divisibility)

    def _share(self, batched_inputs) -> ImageList:
        images = self._preprocess(batched_inputs)
        feats = self.trunk(images.tensor)
        for det in self.detectors:
            det.backbone.bottom_up.features = feats
        return images

    def forward(self, batched_inputs: List[Dict]):
        """Training: the losses of all detectors, prefixed ``"<name>/"``. Inference: the outputs
        of ``eval_head``; with ``ALL_HEADS``, ``{name: outputs}`` per image for every detector,
        all from one trunk pass."""
        every = self.training or self.eval_head == ALL_HEADS
        heads = self.head_names if every else [self._eval_head_name()]
        images = self._share(batched_inputs)
        try:
            if self.training:
                gt = [x["instances"].to(self.device) for x in batched_inputs]
                losses = {}
                for name in heads:
                    det_losses = self._losses(self._detector(name), images, gt)
                    losses.update({f"{name}/{k}": v for k, v in det_losses.items()})
                return losses
            outputs = {
                name: self._inference(self._detector(name), images, batched_inputs)
                for name in heads
            }
        finally:
            for det in self.detectors:
                det.backbone.bottom_up.features = None
        if self.eval_head != ALL_HEADS:
            return outputs[heads[0]]
        return [{name: outputs[name][i] for name in heads} for i in range(len(batched_inputs))]

    def _detector(self, name: str) -> nn.Module:
        return self.detectors[self.head_names.index(name)]

    def _eval_head_name(self) -> str:
        name = self.eval_head or self.head_names[0]
        if name not in self.head_names:
            raise KeyError(
                f"eval_head={name!r}: no such head; heads: {self.head_names}, or {ALL_HEADS!r}"
            )
        return name

    @staticmethod
    def _losses(det, images, gt):
        # GeneralizedRCNN.forward's training path, on the shared padded images
        features = det.backbone(images.tensor)
        proposals, proposal_losses = det.proposal_generator(images, features, gt)
        _, detector_losses = det.roi_heads(images, features, proposals, gt)
        return {**detector_losses, **proposal_losses}

    @staticmethod
    def _inference(det, images, batched_inputs):
        features = det.backbone(images.tensor)
        proposals, _ = det.proposal_generator(images, features, None)
        results, _ = det.roi_heads(images, features, proposals, None)
        return GeneralizedRCNN._postprocess(results, batched_inputs, images.image_sizes)

    @contextlib.contextmanager
    def evaluating_all_heads(self):
        """Within the block, inference returns ``{head name: outputs}`` per image for every
        detector, from one trunk pass (``eval_head=ALL_HEADS``); ``eval_head`` is restored after.
        What an evaluator per head (:class:`freezedet.evaluation.PerHeadEvaluator`) takes."""
        previous, self.eval_head = self.eval_head, ALL_HEADS
        try:
            yield self
        finally:
            self.eval_head = previous

    def head_state_dict(self, name: str) -> Dict[str, torch.Tensor]:
        """Detector ``name`` with the trunk, as the state dict of the stand-alone detector."""
        if name not in self.head_names:
            raise KeyError(f"no head {name!r}; heads: {self.head_names}")
        sd = dict(self._detector(name).state_dict())
        sd.update({_TRUNK_KEY + k: v for k, v in self.trunk.state_dict().items()})
        return sd

    def export_heads(self, output_dir: str, prefix: str = "model") -> List[str]:
        """Write ``<prefix>_<name>.pth`` per head, loadable by ``DetectionCheckpointer`` into the
        stand-alone detector (e.g. ``tools/train_net.py --eval-only`` of its own config)."""
        os.makedirs(output_dir, exist_ok=True)
        paths = []
        for name in self.head_names:
            path = os.path.join(output_dir, f"{prefix}_{name}.pth")
            atomic_torch_save({"model": self.head_state_dict(name)}, path)
            paths.append(path)
        return paths

    def _load_trunk_from_standalone_layout(self, state_dict, prefix, *args):
        old = prefix + _TRUNK_KEY
        for k in [k for k in state_dict if k.startswith(old)]:
            new = prefix + "trunk." + k[len(old) :]
            state_dict.setdefault(new, state_dict.pop(k))
