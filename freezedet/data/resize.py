"""Multi-scale training sizes written as one image size and scale factors.

A recipe's train sizes (e.g. shortest side 512-768 px) and its test size (640 px) are one
number apart: with :class:`ResizeShortestEdgeScaled` the train sizes are factors of the
config's ``image_size``, so one override (``dataloader.image_size=384``) moves train and test
together, with no list index to know (configs cannot multiply: no lambdas in configs).
"""

from typing import Sequence

from detectron2.data.transforms import ResizeShortestEdge
from PIL import Image

__all__ = ["ResizeShortestEdgeScaled"]


class ResizeShortestEdgeScaled(ResizeShortestEdge):
    """``ResizeShortestEdge`` whose shortest-side lengths are ``size`` times each of ``scales``
    (rounded to whole pixels), drawn as detectron2's ``sample_style`` says."""

    def __init__(
        self,
        *,
        size: int,
        scales: Sequence[float] = (1.0,),
        max_size: int = 1333,
        sample_style: str = "choice",
        interp: int = Image.BILINEAR,
    ):
        """
        Args:
            size (int): the image size the scales multiply (the test size of the recipe).
            scales (list[float]): factors of ``size``; "choice": each a possible shortest side,
                "range": [low, high], the shortest side drawn uniformly between them.
            max_size (int): the longest side at most, as in ``ResizeShortestEdge``.
            sample_style (str): "choice" or "range".
            interp: PIL resampling filter.
        """
        assert size > 0 and len(scales) > 0 and min(scales) > 0, (
            f"ResizeShortestEdgeScaled: size={size} and every scale in {list(scales)} must be "
            "positive (and scales not empty)"
        )
        lengths = [int(round(size * float(s))) for s in scales]
        super().__init__(lengths, max_size=max_size, sample_style=sample_style, interp=interp)
        self.size, self.scales = size, tuple(float(s) for s in scales)
