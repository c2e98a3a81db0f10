"""Two augmented views of an image with aligned proposals, for AlignDet-style box-domain
pre-training (Li et al., "AlignDet: Aligning Pre-training and Fine-tuning in Object Detection",
ICCV 2023).

:class:`TwoViewProposalMapper` draws the geometric augmentations (scale jitter, crop, flip) and
one photometric op independently for each view, clips the image's cached selective-search
proposals to the part of the image both views show (:func:`align_proposals`), transforms them
with each view's transform, and keeps only the proposals large enough in *both* views, in the
same order: row ``i`` of view 1 and row ``i`` of view 2 are the same proposal
(``instances.proposal_ids`` holds its index in the image's proposal list). This alignment is
what the box-domain contrastive loss uses as positive pairs.

:func:`proposal_dataset_dicts` loads a dataset and attaches the proposals of a
:class:`~freezedet.data.proposals.ProposalCache` file, with an error naming the exact
``tools/selective_search.py`` command when the cache is missing.
"""

import copy
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

import detectron2.data.transforms as T
from detectron2.data import detection_utils as utils
from detectron2.structures import BoxMode, Boxes, Instances
from detectron2.utils.file_io import PathManager

from .proposals import load_proposals_into_dicts
from .validate import checked_dataset_dicts

__all__ = ["TwoViewProposalMapper", "align_proposals", "proposal_dataset_dicts"]


def proposal_dataset_dicts(
    names: Union[str, Sequence[str]], *, proposal_file: str, params: Optional[dict] = None
) -> List[dict]:
    """Dataset dicts of ``names`` (annotations ignored, images checked) with proposals attached.

    Args:
        names (str or list[str]): registered dataset names.
        proposal_file (str): a cache written by ``tools/selective_search.py``.
        params (dict or None): the generation parameters expected (warns if the cache differs).
    """
    label = names if isinstance(names, str) else ",".join(names)
    if not PathManager.exists(proposal_file):
        dataset = label if isinstance(names, str) else names[0]
        raise FileNotFoundError(
            f"proposal cache {proposal_file} (dataloader.train.dataset.proposal_file) does not "
            f"exist. Create it with:\n  python tools/selective_search.py --dataset {dataset} "
            f"--output {proposal_file} --workers 2\n(or `--config-file <this config>`, which reads "
            "dataloader.proposals)."
        )
    records = checked_dataset_dicts(names, filter_empty=False)
    for r in records:  # pre-training never sees labels
        r.pop("annotations", None)
    return load_proposals_into_dicts(records, proposal_file, params=params)


def _axis_map(transforms: T.TransformList, image_size) -> Tuple[np.ndarray, np.ndarray]:
    """(scale, offset), each (2,) for (x, y): ``transforms`` maps an original point ``p`` to
    ``scale * p + offset``. Resizes, crops, pads and flips compose to such a map; anything else
    (a rotation) is refused, since the boxes of the two views could then not cover the same
    content."""
    h, w = image_size
    pts = np.array([[0.0, 0.0], [w, h], [0.3 * w, 0.7 * h]])
    out = transforms.apply_coords(pts.astype(np.float32)).astype(np.float64)
    scale = (out[1] - out[0]) / pts[1]
    offset = out[0]
    assert np.allclose(out[2], scale * pts[2] + offset, atol=1e-3 * max(h, w)), (
        f"view transforms {transforms.transforms} are not an axis-aligned resize / crop / pad / "
        "flip: the two views' proposals cannot be aligned"
    )
    return scale, offset


def align_proposals(
    boxes: np.ndarray,
    views: Sequence[Tuple[T.TransformList, Tuple[int, int]]],
    image_size: Tuple[int, int],
    min_size: float,
) -> Tuple[np.ndarray, List[np.ndarray]]:
    """Proposals of one image in several views that cover the same image content in every view.

    A view shows a window of the original image (a crop cuts it, a pad adds no content). Each
    proposal is clipped to the intersection of the views' windows *before* it is transformed,
    so a proposal cut by one view's crop is cut the same way in the other views; clipping each
    view separately would pair a partial box in one view with the whole box in another.

    Args:
        boxes (ndarray): (N, 4) XYXY_ABS proposals in original image coordinates.
        views (list[tuple[TransformList, tuple[int, int]]]): each view's transforms and its
            image's (h, w).
        image_size (tuple[int, int]): (h, w) of the original image.
        min_size (float): a proposal narrower or lower than this (px) in any view is dropped.

    Returns:
        (keep, view_boxes): a boolean mask of the proposals kept and, per view, the transformed
        (N, 4) boxes (all rows, so row ``i`` is still proposal ``i``).
    """
    h, w = image_size
    window = np.array([0.0, 0.0, w, h])
    maps = [_axis_map(transforms, image_size) for transforms, _ in views]
    for (scale, offset), (_, (vh, vw)) in zip(maps, views):
        corners = (np.array([[0.0, 0.0], [vw, vh]]) - offset) / scale  # view frame -> original
        window[:2] = np.maximum(window[:2], corners.min(0))
        window[2:] = np.minimum(window[2:], corners.max(0))
    clipped = boxes.astype(np.float64).reshape(-1, 4).copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(window[0], max(window[0], window[2]))
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(window[1], max(window[1], window[3]))
    keep = np.ones(len(clipped), dtype=bool)
    out = []
    for transforms, (vh, vw) in views:
        b = transforms.apply_box(clipped.astype(np.float32)).reshape(-1, 4)
        # the window is inside the view; clipping only absorbs float rounding
        b[:, [0, 2]] = b[:, [0, 2]].clip(0, vw)
        b[:, [1, 3]] = b[:, [1, 3]].clip(0, vh)
        keep &= ((b[:, 2] - b[:, 0]) >= min_size) & ((b[:, 3] - b[:, 1]) >= min_size)
        out.append(b)
    return keep, out


class TwoViewProposalMapper:
    """Maps a dataset dict with ``proposal_boxes`` to ``{"views": [view1, view2], ...}``.

    Each view is a dict as detectron2's models read it (``image``: CHW uint8 tensor, ``height``,
    ``width``) plus ``instances``: the aligned proposals as ``gt_boxes`` of one class
    (``gt_classes`` = 0) and their ``proposal_ids``.
    """

    def __init__(
        self,
        *,
        augmentations: List[T.Augmentation],
        photometric: List[T.Augmentation],
        image_format: str = "RGB",
        max_proposals: int = 64,
        min_size: float = 4.0,
    ):
        """
        Args:
            augmentations (list[Augmentation]): geometric augmentations, drawn independently for
                each view (e.g. ResizeScale + FixedSizeCrop + RandomFlip).
            photometric (list[Augmentation]): each view applies one of these, chosen uniformly
                at random (empty: none).
            image_format (str): format the model expects ("RGB" / "BGR").
            max_proposals (int): at most this many aligned proposals per image (best-ranked
                first); bounds the RoI cost of the pre-training step.
            min_size (float): a proposal clipped below this width or height (px) in a view is
                dropped from both views.
        """
        assert max_proposals > 0, f"max_proposals must be positive, got {max_proposals}"
        self.augmentations = T.AugmentationList(augmentations)
        self.photometric = list(photometric)
        self.image_format = image_format
        self.max_proposals = max_proposals
        self.min_size = min_size

    def draw_view(self, image: np.ndarray) -> Tuple[np.ndarray, T.TransformList]:
        """One view of ``image``: the augmented image and the transforms applied (geometric,
        then the photometric op), drawn from ``np.random``."""
        aug_input = T.AugInput(image)
        transforms = self.augmentations(aug_input)
        if self.photometric:
            op = self.photometric[np.random.randint(len(self.photometric))]
            transforms = transforms + op(aug_input)
        return aug_input.image, transforms

    def __call__(self, dataset_dict: dict) -> dict:
        dataset_dict = copy.copy(dataset_dict)
        assert "proposal_boxes" in dataset_dict, (
            f"image {dataset_dict.get('file_name')} has no proposal_boxes: load the dataset with "
            "freezedet.data.two_view.proposal_dataset_dicts"
        )
        image = utils.read_image(dataset_dict["file_name"], format=self.image_format)
        utils.check_image_size(dataset_dict, image)
        boxes = BoxMode.convert(
            np.asarray(dataset_dict.pop("proposal_boxes"), dtype=np.float32).reshape(-1, 4),
            dataset_dict.pop("proposal_bbox_mode", BoxMode.XYXY_ABS),
            BoxMode.XYXY_ABS,
        )
        dataset_dict.pop("proposal_objectness_logits", None)
        views = [self.draw_view(image) for _ in range(2)]
        keep, view_boxes = align_proposals(
            boxes, [(t, im.shape[:2]) for im, t in views], image.shape[:2], self.min_size
        )
        ids = np.nonzero(keep)[0][: self.max_proposals]
        dataset_dict["views"] = [
            self._to_model_input(im, b[ids], ids) for (im, _), b in zip(views, view_boxes)
        ]
        return dataset_dict

    def _to_model_input(self, image: np.ndarray, boxes: np.ndarray, ids: np.ndarray) -> dict:
        h, w = image.shape[:2]
        instances = Instances((h, w))
        instances.gt_boxes = Boxes(torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        instances.gt_classes = torch.zeros(len(boxes), dtype=torch.int64)
        instances.proposal_ids = torch.as_tensor(ids, dtype=torch.int64)
        return {
            "image": torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "height": h,
            "width": w,
            "instances": instances,
        }
