from . import deepforest  # noqa: F401  (registers deepforest_{train,val,...})
from . import labelme  # noqa: F401  (registers labelme_voc_train)
from .coco_json import check_coco_json, coco_json_dataset  # noqa: F401
