# mask_rcnn_fpn.py sized for a CPU: faster_rcnn_fpn_cpu.py's data (image size), schedule and
# trunk, its RoI and proposal counts, and mask_rcnn_fpn.py's model.
from .faster_rcnn_fpn_cpu import dataloader, lr_multiplier, optimizer, train, trunk
from .mask_rcnn_fpn import model

dataloader.train.mapper.use_instance_mask = True
model.roi_heads.batch_size_per_image = 128
model.proposal_generator.post_nms_topk = (1000, 300)
model.roi_heads.box_predictor.test_topk_per_image = 300
