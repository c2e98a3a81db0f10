"""ImageNet classifiers as detectron2 bottom-up backbones, frozen, fine-tuned or from scratch.

"Proper Reuse of Image Classification Features Improves Object Detection" (Vasconcelos et al.,
CVPR 2022) keeps the classifier *completely* frozen: weights and BatchNorm statistics. Here that
is the ``"frozen"`` mode:

- every trunk parameter has ``requires_grad=False``;
- every BatchNorm becomes a frozen-statistics norm (detectron2's ``FrozenBatchNorm2d``, or timm's
  ``FrozenBatchNormAct2d`` for timm's fused norm+activation), so statistics never move;
- the trunk stays in eval mode (dropout / drop-path off) whatever ``model.train()`` says;
- the trunk runs under ``torch.no_grad()``: no autograd graph, no stored activations. Its outputs
  are plain tensors; gradients start at the neck.

Frozen-trunk execution switches (keyword arguments of both backbones; see
:mod:`freezedet.modeling.backbone.frozen_runtime`): ``fold_bn`` and ``channels_last`` (default
on), ``compile``, ``trunk_autocast`` (CUDA only), ``inference_mode``, and ``feature_cache`` (a
:class:`~freezedet.modeling.backbone.feature_cache.FeatureCache`, training only). They apply only
to a frozen trunk without adapters; otherwise the trunk runs as is.

LayerNorm trunks (ConvNeXt, and plain ViTs in :mod:`freezedet.modeling.backbone.vit`) take the
same modes: there is no BatchNorm to convert or fold, ``norm`` only passes the mode checks.

``"finetune"`` trains the trunk from the loaded checkpoint (norm: ``"FrozenBN"`` keeps ImageNet
statistics, the usual choice at small batch; ``"BN"``/``"SyncBN"`` train them); ``"scratch"``
trains a randomly initialised trunk and needs a trainable norm.
"""

import contextlib
import logging
import math
from typing import Dict, Optional, Sequence

import torch
from torch import nn

from detectron2.layers import FrozenBatchNorm2d, NaiveSyncBatchNorm
from detectron2.modeling import Backbone
from detectron2.modeling.backbone.resnet import BasicStem, ResNet

from .feature_cache import FeatureCache
from .frozen_runtime import FrozenTrunkRuntime
from .weights import load_timm_weights, weights_file

__all__ = [
    "MODES",
    "TimmBackbone",
    "FreezableResNet",
    "convert_norm",
    "replace_batchnorm",
]

MODES = ("frozen", "finetune", "scratch")
logger = logging.getLogger(__name__)


def convert_norm(module: nn.Module, norm: str) -> nn.Module:
    """Convert every BatchNorm in ``module`` to ``norm``: "FrozenBN", "BN", "SyncBN" or "naiveSyncBN".

    timm's ``BatchNormAct2d`` (norm + activation in one module) keeps its activation.
    """
    if norm == "BN":
        return module
    if norm == "FrozenBN":
        return _freeze_bn(module)
    if norm in ("SyncBN", "naiveSyncBN"):
        cls = nn.SyncBatchNorm if norm == "SyncBN" else NaiveSyncBatchNorm
        return replace_batchnorm(module, cls)
    raise ValueError(f"norm={norm!r} is not one of 'FrozenBN', 'BN', 'SyncBN', 'naiveSyncBN'")


def _freeze_bn(module: nn.Module) -> nn.Module:
    from timm.layers import BatchNormAct2d, freeze_batch_norm_2d

    # timm's fused norm+activation must keep its activation; detectron2's converter would see a
    # BatchNorm2d subclass and drop it
    if isinstance(module, BatchNormAct2d):
        return freeze_batch_norm_2d(module)
    if isinstance(module, (nn.BatchNorm2d, nn.SyncBatchNorm)):
        return FrozenBatchNorm2d.convert_frozen_batchnorm(module)
    for name, child in module.named_children():
        new_child = _freeze_bn(child)
        if new_child is not child:
            setattr(module, name, new_child)
    return module


def replace_batchnorm(
    module: nn.Module, cls, types=(nn.BatchNorm2d, nn.SyncBatchNorm, NaiveSyncBatchNorm)
) -> nn.Module:
    """Replace modules whose exact type is in ``types`` by ``cls``, keeping their state."""
    if type(module) in types and cls is not type(module):
        new = cls(
            module.num_features,
            eps=module.eps,
            momentum=module.momentum,
            affine=module.affine,
            track_running_stats=module.track_running_stats,
        )
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new
    for name, child in module.named_children():
        new_child = replace_batchnorm(child, cls, types)
        if new_child is not child:
            setattr(module, name, new_child)
    return module


def _adapters_train(module: nn.Module, mode: bool):
    from .adapters import ResidualAdapter

    for m in module.modules():
        if isinstance(m, ResidualAdapter):
            m.train(mode)


class _FreezableTrunk:
    """Mode handling shared by the classifier backbones (a mixin for ``Backbone`` subclasses)."""

    def _setup_mode(self, mode: str, norm: str, trunk: nn.Module) -> nn.Module:
        assert mode in MODES, f"mode={mode!r} is not one of {MODES}"
        if mode == "frozen" and norm != "FrozenBN":
            raise ValueError(
                f"mode='frozen' keeps BN statistics frozen; norm must be 'FrozenBN', got {norm!r}"
            )
        if mode == "scratch" and norm == "FrozenBN":
            raise ValueError(
                "mode='scratch' trains a randomly initialised trunk; FrozenBN would freeze its "
                "random statistics. Use norm='BN', 'SyncBN' or 'naiveSyncBN'."
            )
        self.mode = mode
        trunk = convert_norm(trunk, norm)
        if mode == "frozen":
            for p in trunk.parameters():
                p.requires_grad_(False)
        return trunk

    @property
    def is_frozen(self) -> bool:
        return self.mode == "frozen"

    def freeze(self):
        """Switch to frozen mode in place (weights, BN statistics, no autograd); returns self."""
        self._trunk_module().requires_grad_(False)
        self._set_trunk(convert_norm(self._trunk_module(), "FrozenBN"))
        self.mode = "frozen"
        self.train(self.training)
        return self

    num_adapters = 0  # set by freezedet.modeling.backbone.adapters.with_residual_adapters

    def train(self, mode: bool = True):
        super().train(mode)
        self._train_mode = mode  # a frozen ResNet's own ``training`` stays False
        if self.is_frozen:
            self._trunk_module().eval()
            _adapters_train(self, mode)
        return self

    def _trunk_context(self):
        # with adapters inside, the frozen trunk must build a graph for the adapters' gradients
        graph_free = self.is_frozen and not self.num_adapters
        return torch.no_grad() if graph_free else contextlib.nullcontext()

    def _setup_runtime(
        self,
        *,
        fold_bn=True,
        channels_last=True,
        compile=False,
        trunk_autocast=None,
        inference_mode=False,
        feature_cache=None,
    ):
        # plain attributes, not submodules: nothing here enters parameters() or state_dict()
        self.__dict__["runtime"] = FrozenTrunkRuntime(
            fold_bn=fold_bn,
            channels_last=channels_last,
            compile=compile,
            autocast=trunk_autocast,
            inference_mode=inference_mode,
        )
        self.__dict__["feature_cache"] = feature_cache
        self.trunk_calls = 0  # trunk executions (cache hits excluded): inspectable in tests

    def _run_trunk(self, x: torch.Tensor):
        """The trunk's feature maps (a list in ``_out_features`` order)."""
        # traced, the trunk itself runs: through the runtime copy its weights would become
        # constants of the graph, which a later load_state_dict of the traced module never reaches
        if torch.jit.is_tracing() or not (self.is_frozen and not self.num_adapters):
            with self._trunk_context():
                self.trunk_calls += 1
                return self._trunk_forward(self._trunk_module(), x)

        def compute(inp):
            self.trunk_calls += 1
            return self.runtime(self._trunk_module(), type(self)._trunk_forward, inp)

        if self.feature_cache is not None and self._train_mode:
            return self.feature_cache(x, compute)
        return compute(x)


def _load_features_weights(trunk: nn.Module, model_name: str, path, kwargs):
    """Load a classifier's weights file into its ``features_only`` wrapper (or do nothing)."""
    if not path:
        return None
    import timm

    # the checkpoint filter needs the classifier; the wrapper renames the first level of
    # flattened sequentials ("stages.0." -> "stages_0.")
    full = timm.create_model(model_name, pretrained=False, **kwargs)
    own = set(trunk.state_dict())

    def key_map(k):
        if k in own:
            return k
        parts = k.split(".")
        flat = "_".join(parts[:2]) + "." + ".".join(parts[2:])
        return flat if len(parts) > 2 and flat in own else k

    return load_timm_weights(trunk, path, filter_model=full, key_map=key_map)


class _TimmTrunk(_FreezableTrunk):
    """A timm model held as ``self.trunk`` and run as ``trunk(x)``, padded to
    ``self._size_divisibility`` (TimmBackbone, ViTBackbone)."""

    def _trunk_module(self):
        return self.trunk

    def _set_trunk(self, trunk):
        self.trunk = trunk

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    @property
    def padding_constraints(self) -> Dict[str, int]:
        return {"size_divisibility": self._size_divisibility}

    @staticmethod
    def _trunk_forward(trunk, x):
        return trunk(x)


class TimmBackbone(_TimmTrunk, Backbone):
    """Any timm classifier with ``features_only`` support as a detectron2 bottom-up backbone.

    Outputs are named ``c{k}`` for a feature map of stride ``2**k`` (``c3`` = stride 8 ...).
    Weights come from a detectron2 checkpoint (``train.init_checkpoint``) written by
    ``tools/convert_pretrained.py``; the trunk's parameters are under ``trunk.``.
    """

    def __init__(
        self,
        *,
        model_name: str,
        out_features: Sequence[str] = ("c3", "c4", "c5"),
        mode: str = "frozen",
        norm: str = "FrozenBN",
        drop_path_rate: float = 0.0,
        weights: Optional[str] = None,
        timm_kwargs: Optional[Dict] = None,
        size_divisibility: int = 32,
        fold_bn: bool = True,
        channels_last: bool = True,
        compile: bool = False,
        trunk_autocast: Optional[str] = None,
        inference_mode: bool = False,
        feature_cache: Optional[FeatureCache] = None,
    ):
        """
        Args:
            model_name (str): a timm model name, e.g. "tf_efficientnet_lite0", "resnet50".
            out_features (Sequence[str]): which feature maps to return, ``c{k}`` for stride 2**k.
            mode (str): "frozen", "finetune" or "scratch" (see module docstring).
            norm (str): BatchNorm handling: "FrozenBN" (required when frozen), "BN", "SyncBN",
                "naiveSyncBN".
            drop_path_rate (float): stochastic depth when the trunk trains.
            weights (str or None): a local classifier weights file (``.pth`` / ``.safetensors``,
                timm or original layout: :mod:`freezedet.modeling.backbone.weights`), loaded
                at construction; None: weights come from ``train.init_checkpoint`` (or none).
            timm_kwargs (dict or None): extra ``timm.create_model`` arguments (e.g.
                ``pretrained_cfg_overlay=dict(file=...)``, an alternative to ``weights``).
            size_divisibility (int): input padding the trunk needs (its largest stride).
            fold_bn (bool): frozen trunk: fold frozen BN into the preceding conv (runtime copy;
                checkpoints keep the unfolded layout).
            channels_last (bool): frozen trunk: run in channels_last memory format (default on:
                faster on CPU, see benchmarks/frozen_trunk_vs_naive.py).
            compile (bool): frozen trunk: ``torch.compile`` it (CPU and CUDA).
            trunk_autocast (str or None): frozen trunk: "bf16"/"fp16" autocast on CUDA only.
            inference_mode (bool): frozen trunk: ``torch.inference_mode`` instead of no_grad.
            feature_cache (FeatureCache or None): frozen trunk, training: reuse the features of
                inputs seen before (needs a finite input pipeline).
        """
        super().__init__()
        import timm

        if model_name not in timm.list_models():
            close = timm.list_models(f"*{model_name.split('_')[-1]}*")[:8]
            raise ValueError(
                f"unknown timm model name {model_name!r}. Similar names: {close}. "
                "See timm.list_models()."
            )
        kwargs = dict(timm_kwargs or {})
        path = weights_file(weights, kwargs)
        kwargs.pop("pretrained_cfg_overlay", None)
        probe = timm.create_model(model_name, features_only=True, pretrained=False, **kwargs)
        strides = probe.feature_info.reduction()
        names = [f"c{int(math.log2(s))}" for s in strides]
        missing = [f for f in out_features if f not in names]
        if missing:
            raise ValueError(
                f"{model_name} provides features {names}; {missing} are not among them"
            )
        out_indices = tuple(names.index(f) for f in out_features)
        trunk = timm.create_model(
            model_name,
            features_only=True,
            pretrained=False,
            out_indices=out_indices,
            drop_path_rate=drop_path_rate if mode != "frozen" else 0.0,
            **kwargs,
        )
        self.weights_report = _load_features_weights(trunk, model_name, path, kwargs)
        self.trunk = self._setup_mode(mode, norm, trunk)
        self.model_name = model_name
        self._out_features = list(out_features)
        channels = trunk.feature_info.channels()
        self._out_feature_channels = dict(zip(out_features, channels))
        self._out_feature_strides = {f: 2 ** int(f[1:]) for f in out_features}
        self._size_divisibility = size_divisibility
        self._setup_runtime(
            fold_bn=fold_bn,
            channels_last=channels_last,
            compile=compile,
            trunk_autocast=trunk_autocast,
            inference_mode=inference_mode,
            feature_cache=feature_cache,
        )
        self.train(True)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        return dict(zip(self._out_features, self._run_trunk(x)))


class FreezableResNet(_FreezableTrunk, ResNet):
    """detectron2's own ResNet with the same frozen / finetune / scratch modes.

    Parameter names are those of detectron2's ResNet, so model-zoo ImageNet checkpoints
    (e.g. ``detectron2://ImageNetPretrained/MSRA/R-50.pkl``) load unchanged.
    """

    def __init__(
        self,
        stem: nn.Module,
        stages,
        *,
        out_features,
        mode: str = "frozen",
        norm: str = "FrozenBN",
        **runtime,
    ):
        """
        Args:
            stem (nn.Module): e.g. ``BasicStem``.
            stages (list[list[CNNBlockBase]]): from ``ResNet.make_default_stages``.
            out_features (list[str]): e.g. ["res3", "res4", "res5"].
            mode (str): "frozen", "finetune" or "scratch".
            norm (str): BatchNorm handling, as for :class:`TimmBackbone`. Blocks built with
                "FrozenBN" stay frozen-statistics unless ``norm`` converts them.
            runtime: the frozen-trunk switches of :class:`TimmBackbone` (``fold_bn``,
                ``channels_last``, ``compile``, ``trunk_autocast``, ``inference_mode``,
                ``feature_cache``).
        """
        super().__init__(stem, stages, out_features=out_features)
        self._setup_mode(mode, norm, self)
        self._setup_runtime(**runtime)
        self.train(True)

    def freeze(self, freeze_at=None):
        """Freeze everything (no argument), or detectron2's ``ResNet.freeze(freeze_at)``."""
        if freeze_at is not None:
            return ResNet.freeze(self, freeze_at)
        return _FreezableTrunk.freeze(self)

    def _trunk_module(self):
        return self

    def _set_trunk(self, trunk):
        assert trunk is self, "FreezableResNet converts its norms in place"

    def train(self, mode: bool = True):
        nn.Module.train(self, mode)
        self._train_mode = mode
        if self.is_frozen:
            nn.Module.train(self, False)
            _adapters_train(self, mode)
        return self

    @staticmethod
    def _trunk_forward(resnet, x):
        out = ResNet.forward(resnet, x)
        return [out[f] for f in resnet._out_features]

    def forward(self, x):
        return dict(zip(self._out_features, self._run_trunk(x)))

    @property
    def padding_constraints(self) -> Dict[str, int]:
        return {"size_divisibility": 32}

    @property
    def size_divisibility(self) -> int:
        return 32

    @staticmethod
    def build(
        *,
        depth: int = 50,
        out_features=("res3", "res4", "res5"),
        mode: str = "frozen",
        norm: str = "FrozenBN",
        stride_in_1x1: bool = True,
        **runtime,
    ):
        """A ResNet-{depth} in detectron2's MSRA layout (for lazy configs); ``runtime``: the
        frozen-trunk switches (see :class:`FreezableResNet`)."""
        stage_norm = "FrozenBN" if norm == "FrozenBN" else "BN"
        stem = BasicStem(in_channels=3, out_channels=64, norm=stage_norm)
        stages = ResNet.make_default_stages(
            depth=depth, stride_in_1x1=stride_in_1x1, norm=stage_norm
        )
        return FreezableResNet(
            stem, stages, out_features=list(out_features), mode=mode, norm=norm, **runtime
        )
