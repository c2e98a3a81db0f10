"""COCO evaluation that works on both detectron2 routes."""

from detectron2.evaluation import COCOEvaluator as _D2COCOEvaluator

from ..compat import HAS_COMPILED_OPS

__all__ = ["COCOEvaluator"]


class COCOEvaluator(_D2COCOEvaluator):
    """detectron2's ``COCOEvaluator``; its C++ fast path is used only where it was compiled.

    The pure-Python detectron2 install has no ``detectron2._C.COCOevalEvaluateImages``; there
    pycocotools computes the same numbers.
    """

    def __init__(
        self,
        dataset_name,
        tasks=None,
        distributed=True,
        output_dir=None,
        *,
        max_dets_per_image=None,
        use_fast_impl=None,
        **kwargs
    ):
        """
        Args:
            dataset_name, tasks, distributed, output_dir, max_dets_per_image: as detectron2's.
            use_fast_impl (bool or None): None: detectron2's C++ evaluator where compiled.
        """
        if use_fast_impl is None:
            use_fast_impl = HAS_COMPILED_OPS
        elif use_fast_impl and not HAS_COMPILED_OPS:
            raise ValueError(
                "use_fast_impl=True needs detectron2's compiled ops, which this install lacks; "
                "leave it None (auto) or build detectron2 from source."
            )
        super().__init__(
            dataset_name,
            tasks,
            distributed,
            output_dir,
            max_dets_per_image=max_dets_per_image,
            use_fast_impl=use_fast_impl,
            **kwargs
        )
