"""DihedralTTA: the 8 views of an image map back exactly, and fusion scores agreement."""

import numpy as np
import pytest
import torch
from torch import nn

from detectron2.structures import Boxes, Instances

from freezedet.data.transforms import Rot90Transform
from freezedet.inference import DihedralTTA, dihedral_views, fuse_boxes


class _BrightBoxDetector(nn.Module):
    """Finds the bounding box of the non-zero pixels of each input in its own frame, scaled to
    the input's (height, width) as detectron2's postprocessing does; score per view from
    ``scores`` (cycled), so tests can make views disagree."""

    def __init__(self, scores=(1.0,)):
        super().__init__()
        self.scores = list(scores)
        self.calls = 0
        self.seen = []

    def forward(self, batched_inputs):
        outs = []
        for inputs in batched_inputs:
            image = inputs["image"]
            self.seen.append((tuple(image.shape[-2:]), inputs["height"], inputs["width"]))
            ys, xs = torch.nonzero(image.sum(0), as_tuple=True)
            sy, sx = inputs["height"] / image.shape[-2], inputs["width"] / image.shape[-1]
            box = torch.tensor(
                [[xs.min() * sx, ys.min() * sy, (xs.max() + 1) * sx, (ys.max() + 1) * sy]],
                dtype=torch.float32,
            )
            inst = Instances((inputs["height"], inputs["width"]))
            inst.pred_boxes = Boxes(box)
            inst.scores = torch.tensor([self.scores[self.calls % len(self.scores)]])
            inst.pred_classes = torch.zeros(1, dtype=torch.long)
            self.calls += 1
            outs.append({"instances": inst})
        return outs


@pytest.mark.parametrize("views", [1, 2, 4, 8])
@pytest.mark.parametrize("scale", [1, 2])
def test_every_view_maps_back_to_the_original_box(views, scale):
    # a non-square image (40 x 60) with an off-centre rectangle; `scale` 2 is an image the test
    # mapper resized 2x (boxes are reported in the original height / width)
    h, w = 40, 60
    image = torch.zeros(3, h * scale, w * scale)
    x0, y0, x1, y1 = 7, 3, 20, 31
    image[:, y0 * scale : y1 * scale, x0 * scale : x1 * scale] = 1.0
    detector = _BrightBoxDetector()
    tta = DihedralTTA(detector, views=views, batch_views=3).eval()
    (out,) = tta([{"image": image, "height": h, "width": w}])
    inst = out["instances"]
    assert detector.calls == views
    assert len(inst) == 1 and inst.image_size == (h, w)
    assert inst.pred_boxes.tensor[0].tolist() == pytest.approx([x0, y0, x1, y1])
    assert float(inst.scores[0]) == pytest.approx(1.0)
    # odd quarter turns see a transposed image and report in transposed (height, width)
    for (k, _), (shape, vh, vw) in zip(dihedral_views(views), detector.seen):
        expected = (w, h) if k % 2 else (h, w)
        assert (vh, vw) == expected and shape == (expected[0] * scale, expected[1] * scale)


def test_views_match_the_training_transforms():
    # the view of an image is what RandomFlip + RandomRot90 produce in training
    rng = np.random.default_rng(0)
    image = rng.random((5, 7, 3)).astype(np.float32)
    from freezedet.inference.tta import _view_image

    for k, flip in dihedral_views(8):
        expected = image[:, ::-1] if flip else image
        expected = Rot90Transform(k, *expected.shape[:2]).apply_image(expected)
        got = _view_image(torch.from_numpy(image).permute(2, 0, 1), k, flip).permute(1, 2, 0)
        assert np.array_equal(got.numpy(), expected), (k, flip)


def test_fused_score_counts_the_views_that_agree():
    image = torch.zeros(3, 32, 32)
    image[:, 4:12, 10:30] = 1.0
    # the object found at score 0.8 in 4 views and missed (score 0) in the other 4
    detector = _BrightBoxDetector(scores=(0.8, 0.0))
    (out,) = DihedralTTA(detector, views=8).eval()([{"image": image, "height": 32, "width": 32}])
    assert float(out["instances"].scores[0]) == pytest.approx(0.8 * 4 / 8)


def test_fuse_boxes_averages_by_score_and_keeps_classes_apart():
    inst = Instances((100, 100))
    inst.pred_boxes = Boxes(
        torch.tensor([[10, 10, 30, 30], [12, 10, 32, 30], [10, 10, 30, 30], [60, 60, 80, 80.0]])
    )
    inst.scores = torch.tensor([0.6, 0.2, 0.5, 0.4])
    inst.pred_classes = torch.tensor([0, 0, 1, 0])
    fused = fuse_boxes(inst, 0.5, score_divisor=2.0)
    assert len(fused) == 3
    # class 0 cluster: (0.6 * box0 + 0.2 * box1) / 0.8, score (0.6 + 0.2) / 2
    assert fused.scores.tolist() == pytest.approx([0.4, 0.25, 0.2])
    assert fused.pred_boxes.tensor[0].tolist() == pytest.approx([10.5, 10, 30.5, 30])
    assert fused.pred_classes.tolist() == [0, 1, 0]
    # without a divisor, a cluster keeps its best score (tiling's merge)
    assert fuse_boxes(inst, 0.5).scores.tolist() == pytest.approx([0.6, 0.5, 0.4])


def test_bad_arguments_and_training_mode_are_errors():
    with pytest.raises(ValueError, match="views=3"):
        DihedralTTA(_BrightBoxDetector(), views=3)
    with pytest.raises(ValueError, match="merge_iou=1.5"):
        DihedralTTA(_BrightBoxDetector(), merge_iou=1.5)
    with pytest.raises(RuntimeError, match="eval"):
        DihedralTTA(_BrightBoxDetector()).train()([{"image": torch.zeros(3, 4, 4)}])
