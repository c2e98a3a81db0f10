from .backends import BACKENDS, faster_coco_eval_available, resolve_backend
from .coco import COCOEvaluator
from .lvis import LVISEvaluator
from .per_head import PerHeadEvaluator

__all__ = [
    "BACKENDS",
    "COCOEvaluator",
    "LVISEvaluator",
    "PerHeadEvaluator",
    "faster_coco_eval_available",
    "resolve_backend",
]
