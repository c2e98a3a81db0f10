"""Test-time augmentation over the symmetries of the square, for overhead imagery.

Aerial, satellite and microscopy images have no "up": each of the 8 symmetries of the square
(the dihedral group D4: 4 rotations by 90 degrees, each with or without a horizontal flip) is an
equally valid view, and :class:`~freezedet.data.transforms.RandomRot90` trains on all of them.
:class:`DihedralTTA` runs a detector on every view of a test image, maps each view's boxes back
exactly (no interpolation) and merges them by **weighted box fusion** ("Weighted boxes fusion",
Solovyev et al., 2021): boxes of one class overlapping a cluster's fused box by more than
``merge_iou`` join it; the fused box is the score-weighted mean of its members and its score
their sum over the number of views (capped at 1), so an object found in one view of eight scores
an eighth of one found in all. Averaging the views' boxes is what TTA adds for objects whose
outlines the detector localises noisily; the agreement score reranks detections for AP.

detectron2's :class:`~detectron2.modeling.GeneralizedRCNNWithTTA` covers flips and resizes of
natural images and merges by NMS (one view's box survives); this one is for the 8 exact views
and fuses them. Both take a model in eval mode and the same inputs and outputs as the model.
"""

from typing import Dict, List

import torch
from torch import nn

from detectron2.structures import Boxes, Instances
from fvcore.transforms.transform import HFlipTransform, TransformList

from ..data.transforms import Rot90Transform
from .tiling import fuse_boxes

__all__ = ["DihedralTTA", "dihedral_views"]


def dihedral_views(num_views: int):
    """The first ``num_views`` of the 8 views as (quarter turns counter-clockwise, flipped):
    1 = identity, 2 = + horizontal flip, 4 = the 4 rotations, 8 = all of D4."""
    if num_views not in (1, 2, 4, 8):
        raise ValueError(f"DihedralTTA views={num_views} must be 1, 2, 4 or 8")
    if num_views == 2:
        return [(0, False), (0, True)]
    return [(k, flip) for flip in (False, True) for k in range(4)][:num_views]


def _view_image(image: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """(C, H, W): flip horizontally first, then rotate ``k`` quarter turns counter-clockwise
    (as ``np.rot90`` / :class:`~freezedet.data.transforms.Rot90Transform`)."""
    if flip:
        image = image.flip(-1)
    return torch.rot90(image, k, dims=(-2, -1)).contiguous()


def _view_transform(k: int, flip: bool, h: int, w: int) -> TransformList:
    """The view ``(k, flip)`` of an ``h`` x ``w`` image as detectron2 transforms (flip, then
    rotate), the ones training augments with; their inverse maps a view's boxes back."""
    steps = [HFlipTransform(w)] if flip else []
    return TransformList(steps + [Rot90Transform(k, h, w)])


class DihedralTTA(nn.Module):
    """A detector evaluated on the 8 (or 1, 2, 4) dihedral views of each image, with the views'
    detections fused; see the module docstring."""

    def __init__(
        self,
        model: nn.Module,
        *,
        views: int = 8,
        merge_iou: float = 0.55,
        max_detections: int = 300,
        batch_views: int = 8,
    ):
        """
        Args:
            model (nn.Module): a detectron2 meta-architecture (e.g. GeneralizedRCNN) that takes a
                list of dicts with "image" (C, H, W), "height", "width" and returns
                ``[{"instances": Instances}]`` in (height, width) coordinates.
            views (int): 1, 2, 4 or 8 views per image (:func:`dihedral_views`).
            merge_iou (float): a box joins a cluster of its class whose fused box it overlaps by
                more than this.
            max_detections (int): the most fused detections kept per image (highest scores).
            batch_views (int): views run through the model in one batch.
        """
        super().__init__()
        if not 0.0 < merge_iou < 1.0:
            raise ValueError(f"DihedralTTA merge_iou={merge_iou} must be in (0, 1)")
        if max_detections < 1 or batch_views < 1:
            raise ValueError(
                f"DihedralTTA max_detections={max_detections} and batch_views={batch_views} "
                "must be >= 1"
            )
        self.model = model
        self.views = dihedral_views(views)
        self.merge_iou = merge_iou
        self.max_detections = max_detections
        self.batch_views = batch_views

    def forward(self, batched_inputs: List[Dict]) -> List[Dict]:
        if self.training:
            raise RuntimeError("DihedralTTA is for inference: call .eval() first")
        return [{"instances": self._one_image(inputs)} for inputs in batched_inputs]

    def _one_image(self, inputs: Dict) -> Instances:
        image = inputs["image"]
        h = int(inputs.get("height", image.shape[-2]))
        w = int(inputs.get("width", image.shape[-1]))
        view_inputs = []
        for k, flip in self.views:
            view = {key: v for key, v in inputs.items() if key not in ("image", "instances")}
            view["image"] = _view_image(image, k, flip)
            view["height"], view["width"] = (w, h) if k % 2 else (h, w)
            view_inputs.append(view)
        found = []
        for start in range(0, len(view_inputs), self.batch_views):
            batch = view_inputs[start : start + self.batch_views]
            for (k, flip), out in zip(self.views[start:], self.model(batch)):
                inst = out["instances"].to("cpu")
                inverse = _view_transform(k, flip, h, w).inverse()
                boxes = inverse.apply_box(inst.pred_boxes.tensor.numpy())
                back = Instances((h, w))
                back.pred_boxes = Boxes(torch.as_tensor(boxes, dtype=torch.float32))
                back.scores = inst.scores
                back.pred_classes = inst.pred_classes
                found.append(back)
        merged = fuse_boxes(
            Instances.cat(found), self.merge_iou, score_divisor=float(len(self.views))
        )
        return merged[: self.max_detections]
