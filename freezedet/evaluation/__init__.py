from .backends import BACKENDS, faster_coco_eval_available, resolve_backend
from .coco import COCOEvaluator
from .lvis import LVISEvaluator

__all__ = [
    "BACKENDS",
    "COCOEvaluator",
    "LVISEvaluator",
    "faster_coco_eval_available",
    "resolve_backend",
]
