"""Stand-in for ``detectron2._C`` in a pure-Python detectron2 install.

freezedet installs PyPI ``pb1-detectron2==0.6`` (detectron2 v0.6's Python sources, no C++
sources) without its compiled extension. torchvision supplies NMS and RoIAlign; the few ops only
detectron2's extension provides (rotated boxes: their IoU, NMS and RoIAlign; deformable conv on
CUDA; the C++ COCO evaluator) raise a clear error through this module, saying what needs them and
what to do, instead of an ``ImportError`` at import time.

Both ways the extension exposes its ops are covered: attributes of ``detectron2._C`` (pybind) and
the ``torch.ops.detectron2`` operators it registers (``layers/nms.py`` calls
``torch.ops.detectron2.nms_rotated``, which would otherwise be an opaque ``AttributeError``).

This file is copied to ``detectron2/_C.py`` by ``tools/install_detectron2.py``.
"""

import torch

FREEZEDET_STANDIN = True
# Version of freezedet's pure-Python build (this stand-in + the source patches of
# tools/install_detectron2.py). Bump it when either changes: the installer rebuilds older builds.
FREEZEDET_BUILD = 2

_HOW_TO_BUILD = (
    "Build detectron2 from source with its compiled ops into a fresh environment: "
    "`make clean-venv && FREEZEDET_DETECTRON2_SRC=/path/to/detectron2 make install` (see "
    "freezedet's docs/detectron2_compatibility.md, 'Installing detectron2: two routes')."
)

# op-name prefix -> (what needs the op, an alternative that works without it)
_FEATURES = {
    "box_iou_rotated": ("rotated boxes (pairwise_iou_rotated, RRPN, RROIHeads)", ""),
    "nms_rotated": ("rotated boxes (nms_rotated, batched_nms_rotated, RRPN, RROIHeads)", ""),
    "roi_align_rotated": ("rotated boxes (ROIAlignRotated, RROIHeads)", ""),
    "deform_conv": (
        "deformable convolution on CUDA (DeformConv)",
        " On CPU, DeformConv with deformable_groups=1 runs through torchvision.",
    ),
    "modulated_deform_conv": ("modulated deformable convolution (ModulatedDeformConv)", ""),
    "COCOeval": (
        "detectron2's C++ COCO evaluator",
        " Or evaluate with COCOEvaluator(..., use_fast_impl=False) (pycocotools).",
    ),
    "InstanceAnnotation": (
        "detectron2's C++ COCO evaluator",
        " Or evaluate with COCOEvaluator(..., use_fast_impl=False) (pycocotools).",
    ),
}

# the schemas of the operators detectron2's extension registers with TORCH_LIBRARY(detectron2, m)
_TORCH_OPS = {
    "nms_rotated": "nms_rotated(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "box_iou_rotated": "box_iou_rotated(Tensor boxes1, Tensor boxes2) -> Tensor",
    "roi_align_rotated_forward": (
        "roi_align_rotated_forward(Tensor input, Tensor rois, float spatial_scale, "
        "int pooled_height, int pooled_width, int sampling_ratio) -> Tensor"
    ),
    "roi_align_rotated_backward": (
        "roi_align_rotated_backward(Tensor grad, Tensor rois, float spatial_scale, "
        "int pooled_height, int pooled_width, int batch_size, int channels, int height, "
        "int width, int sampling_ratio) -> Tensor"
    ),
}


class CompiledOpUnavailable(RuntimeError):
    pass


def get_compiler_version():
    return "none (pure-Python install by freezedet: no compiled ops)"


def get_cuda_version():
    return "none (pure-Python install by freezedet: no compiled ops)"


def has_cuda():
    return False


def _message(name):
    feature, alternative = next(
        (v for k, v in _FEATURES.items() if name.startswith(k)), ("this feature", "")
    )
    return (
        f"detectron2 was installed without compiled ops (freezedet's pure-Python route), so "
        f"detectron2._C.{name} is unavailable (used by {feature}). {_HOW_TO_BUILD}{alternative}"
    )


def _unavailable(name):
    def op(*args, **kwargs):
        raise CompiledOpUnavailable(_message(name))

    op.__name__ = name
    return op


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return _unavailable(name)


_LIBRARY = torch.library.Library("detectron2", "DEF")
for _name, _schema in _TORCH_OPS.items():
    _LIBRARY.define(_schema)
    _LIBRARY.impl(_name, _unavailable(_name), "CompositeExplicitAutograd")
del _name, _schema
