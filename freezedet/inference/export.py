"""Export of freezedet detectors to TorchScript and ONNX, and running the exported files.

A detectron2 detector takes a list of dicts and returns ``Instances``; an exported program
takes and returns tensors. :class:`ExportableDetector` is the detector as a function of one
image tensor, (C, H, W) in the model's input format (uint8 or float), returning ``(boxes,
scores, classes)`` (+ ``masks``, the (N, 1, M, M) RoI mask probabilities, for mask models) in
the coordinates of that tensor: the model's own preprocessing (normalisation, padding) is
inside, the test-time resize and ``detector_postprocess`` stay outside, in Python, as detectron2
does for its own exports. It is traced with ``torch.jit.trace`` (TorchScript) and exported to
ONNX with PyTorch's TorchScript-based exporter (``dynamo=False``, opset 17: ``RoiAlign`` and
``NonMaxSuppression`` are ONNX ops), height and width dynamic.

Frozen BatchNorm is folded into the preceding convolutions of the exported copy (the eager
runtime does the same, see :mod:`freezedet.modeling.backbone.frozen_runtime`).

:class:`ExportedModel` loads a ``.ts`` (TorchScript) or ``.onnx`` file (ONNX Runtime) behind
the detectron2 model interface, so :class:`~freezedet.inference.Predictor` (and so
``tools/predict.py``, tiles included) runs exported models as it runs eager ones.

Cascade R-CNN traces once its stage loop stops calling the gradient-scaling autograd Function in
inference (:mod:`freezedet.compat`, fix 9); nothing else in the freezedet model grid blocks
export.
"""

import copy
import os
import warnings
from typing import List, Tuple

import numpy as np
import torch
from torch import nn

from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Boxes, Instances

from ..modeling.backbone.frozen_runtime import fold_frozen_batchnorm
from .cli import EXPORT_FORMATS

__all__ = [
    "EXPORT_FORMATS",
    "ONNX_OPSET",
    "ExportableDetector",
    "ExportedModel",
    "detection_differences",
    "export_model",
    "onnx_available",
]

ONNX_OPSET = 17


def onnx_available() -> bool:
    """Whether ``onnx`` and ``onnxruntime`` (the ``export`` extra) are importable."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class ExportableDetector(nn.Module):
    """A detector as a function of one image tensor (see module docstring)."""

    def __init__(self, *, model: nn.Module, fold_bn: bool = True):
        """
        Args:
            model (nn.Module): a detectron2 detector: a ``GeneralizedRCNN`` (Faster / Mask /
                Cascade R-CNN, through ``inference(..., do_postprocess=False)``) or a
                ``DenseDetector`` (RetinaNet: ``preprocess_image``, ``backbone``, ``head``,
                ``forward_inference``).
            fold_bn (bool): fold frozen BatchNorm into convolutions in a copy of ``model``.
        """
        super().__init__()
        assert hasattr(model, "inference") or hasattr(model, "forward_inference"), (
            f"{type(model).__name__} has neither inference() nor forward_inference(): not a "
            "detectron2 detector"
        )
        model = copy.deepcopy(model).eval()
        self.model = fold_frozen_batchnorm(model) if fold_bn else model

    def forward(self, image: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        inputs = [{"image": image}]
        model = self.model
        if hasattr(model, "inference"):
            instances = model.inference(inputs, do_postprocess=False)[0]
        else:  # a DenseDetector's eval forward up to its postprocessing
            images = model.preprocess_image(inputs)
            features = model.backbone(images.tensor)
            features = [features[f] for f in model.head_in_features]
            instances = model.forward_inference(images, features, model.head(features))[0]
        outputs = (instances.pred_boxes.tensor, instances.scores, instances.pred_classes)
        if instances.has("pred_masks"):
            outputs += (instances.pred_masks,)
        return outputs


def export_model(
    model: nn.Module, sample_image: torch.Tensor, path: str, *, fold_bn: bool = True
) -> str:
    """Export ``model`` to ``path``: TorchScript for ``.ts``, ONNX for ``.onnx``.

    Args:
        model (nn.Module): a detectron2 detector (see :class:`ExportableDetector`).
        sample_image (Tensor): a (C, H, W) image in the model's input format, after the test
            transforms, to trace with; a real image, so that every branch the trace records
            is the one real images take.
        path (str): the output file; its extension chooses the format.
        fold_bn (bool): fold frozen BatchNorm into the convolutions of the exported copy.

    Returns:
        str: ``path``.
    """
    ext = os.path.splitext(path)[1]
    assert ext in EXPORT_FORMATS.values(), f"{path}: extension must be one of {EXPORT_FORMATS}"
    assert sample_image.dim() == 3, f"sample image of shape {tuple(sample_image.shape)}: C, H, W"
    wrapper = ExportableDetector(model=model, fold_bn=fold_bn).eval()
    # traced on the model's device: a TorchScript file runs on the device it was traced on
    sample_image = sample_image.to(next(wrapper.parameters()).device)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        # detectron2's shape arithmetic in Python is what the tracer warns about; the parity
        # tests run exported files at other sizes than the traced one
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", ".*is deprecated", FutureWarning)  # torch.jit in 2.14
        if ext == ".ts":
            torch.jit.trace(wrapper, (sample_image,), check_trace=False).save(path)
        else:
            _export_onnx(wrapper, sample_image, path)
    return path


def _export_onnx(wrapper: ExportableDetector, sample_image: torch.Tensor, path: str):
    if not onnx_available():
        raise ImportError(
            "ONNX export needs onnx and onnxruntime: pip install 'freezedet[export]' (or "
            "onnx onnxruntime)"
        )
    n_outputs = len(wrapper(sample_image))
    names = ["boxes", "scores", "classes", "masks"][:n_outputs]
    for category in (FutureWarning, DeprecationWarning, UserWarning):  # exporter deprecations
        warnings.simplefilter("ignore", category)
    torch.onnx.export(
        wrapper,
        (sample_image,),
        path,
        dynamo=False,  # the TorchScript-based exporter: detectron2's Python control flow
        opset_version=ONNX_OPSET,
        input_names=["image"],
        output_names=names,
        dynamic_axes={"image": {1: "height", 2: "width"}, **{n: {0: "detections"} for n in names}},
    )


class ExportedModel(nn.Module):
    """An exported detector (``.ts`` or ``.onnx``) behind detectron2's model interface: a list
    of ``{"image", "height", "width"}`` in, a list of ``{"instances"}`` out, postprocessed to
    (height, width) as the eager model does."""

    def __init__(self, *, path: str, device: str = "cpu", num_threads: int = 0):
        """
        Args:
            path (str): a file written by :func:`export_model`.
            device (str): "cpu" or "cuda" (TorchScript: map location; ONNX: execution
                provider, CUDA only where onnxruntime has it).
            num_threads (int): ONNX Runtime intra-op threads; 0: torch's thread count.
        """
        super().__init__()
        if not os.path.isfile(path):
            raise FileNotFoundError(f"exported model {path} does not exist")
        self.path = path
        self.format = "onnx" if path.endswith(".onnx") else "torchscript"
        self._device = torch.device(device)
        if self.format == "torchscript":
            with warnings.catch_warnings():  # torch 2.14 deprecates TorchScript for torch.export
                warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated")
                self.module = torch.jit.load(path, map_location=self._device)
        else:
            self.__dict__["session"] = _onnx_session(path, device, num_threads)

    @property
    def device(self) -> torch.device:
        return self._device

    def _run(self, image: torch.Tensor) -> List[torch.Tensor]:
        if self.format == "torchscript":
            return list(self.module(image.to(self._device)))
        outputs = self.session.run(None, {"image": image.cpu().numpy()})
        return [torch.from_numpy(np.asarray(o)) for o in outputs]

    @torch.no_grad()
    def forward(self, batched_inputs: List[dict]) -> List[dict]:
        results = []
        for item in batched_inputs:
            image = item["image"]
            outputs = self._run(image)
            instances = Instances(tuple(image.shape[-2:]))
            instances.pred_boxes = Boxes(outputs[0])
            instances.scores = outputs[1]
            instances.pred_classes = outputs[2]
            if len(outputs) > 3:
                instances.pred_masks = outputs[3]
            height = item.get("height", image.shape[-2])
            width = item.get("width", image.shape[-1])
            results.append({"instances": detector_postprocess(instances, height, width)})
        return results


def _onnx_session(path: str, device: str, num_threads: int):
    if not onnx_available():
        raise ImportError(
            f"running {path} needs onnxruntime: pip install 'freezedet[export]' (or onnxruntime)"
        )
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    if str(device).startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RuntimeError(
                f"device={device!r} but this onnxruntime has no CUDA provider "
                f"({ort.get_available_providers()}); install onnxruntime-gpu or use cpu"
            )
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(path, sess_options=options, providers=providers)


def detection_differences(a: Instances, b: Instances) -> dict:
    """How far two predictions of one image are apart, regardless of the order of detections
    (near-equal scores may sort differently): every detection is paired with the closest
    detection of the same class in the other set (largest absolute coordinate difference).

    Returns:
        dict: ``count`` (len(a), len(b)); ``box``: the largest pairing distance in px (both
        directions), ``score``: the largest score difference of paired detections; inf when
        the counts differ.
    """
    out = {"count": (len(a), len(b)), "box": float("inf"), "score": float("inf")}
    if len(a) != len(b):
        return out
    if len(a) == 0:
        return dict(out, box=0.0, score=0.0)
    boxes_a, boxes_b = a.pred_boxes.tensor.float(), b.pred_boxes.tensor.float()
    dist = (boxes_a[:, None, :] - boxes_b[None, :, :]).abs().amax(dim=-1)
    dist[a.pred_classes[:, None] != b.pred_classes[None, :]] = float("inf")
    nearest_b, nearest_a = dist.argmin(dim=1), dist.argmin(dim=0)
    box = max(dist.min(dim=1).values.max().item(), dist.min(dim=0).values.max().item())
    score = max(
        (a.scores - b.scores[nearest_b]).abs().max().item(),
        (b.scores - a.scores[nearest_a]).abs().max().item(),
    )
    return dict(out, box=box, score=score)
