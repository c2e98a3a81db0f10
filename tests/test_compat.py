"""freezedet.compat: each shim fixes what its probe detects, on this detectron2."""

import pytest
import torch

from freezedet import compat


def test_map_dataset_fallback_works():
    from detectron2.data.common import MapDataset

    calls = []

    def fails_once(x):
        calls.append(x)
        return None if len(calls) == 1 else x * 10

    assert MapDataset([1, 2, 3], fails_once)[0] in (20, 30)
    assert not compat._map_dataset_fallback_broken()


def test_lr_scheduler_hook_saves_and_restores_torch_schedulers():
    from detectron2.engine import hooks

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(3):
        opt.step()
        sched.step()
    state = hooks.LRScheduler(opt, sched).state_dict()
    assert state["last_epoch"] == 3
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, step_size=1, gamma=0.5)
    hooks.LRScheduler(opt2, sched2).load_state_dict(state)
    assert sched2.last_epoch == 3


def test_export_imports_without_caffe2():
    export = compat.import_export()
    assert hasattr(export, "TracingAdapter") and hasattr(export, "scripting_with_instances")
    from detectron2.utils.analysis import FlopCountAnalysis  # needs detectron2.export

    assert FlopCountAnalysis is not None


@pytest.mark.skipif(compat.HAS_COMPILED_OPS, reason="detectron2 built with its compiled ops")
def test_cascade_stages_scale_gradients_in_training_only():
    """Fix 9: a Cascade R-CNN traces in inference; in training the features' gradient into the
    stages is still scaled by 1 / num_stages."""
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.poolers import ROIPooler
    from detectron2.modeling.roi_heads import CascadeROIHeads, FastRCNNConvFCHead
    from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers
    from detectron2.modeling.box_regression import Box2BoxTransform
    from detectron2.structures import Boxes, Instances

    assert not compat._cascade_scales_gradient_in_inference()
    stages = 3
    heads = CascadeROIHeads(
        box_in_features=["p2"],
        box_pooler=ROIPooler((7, 7), (1.0,), 0, "ROIAlignV2"),
        box_heads=[
            FastRCNNConvFCHead(ShapeSpec(channels=4, height=7, width=7), conv_dims=[], fc_dims=[8])
            for _ in range(stages)
        ],
        box_predictors=[
            FastRCNNOutputLayers(
                ShapeSpec(channels=8),
                box2box_transform=Box2BoxTransform((10, 10, 5, 5)),
                num_classes=1,
            )
            for _ in range(stages)
        ],
        proposal_matchers=[None] * stages,
        num_classes=1,
        batch_size_per_image=4,
        positive_fraction=0.5,
    )
    proposals = Instances((16, 16))
    proposals.proposal_boxes = Boxes(torch.tensor([[2.0, 2, 10, 10]]))
    grads, image_features = {}, torch.rand(1, 4, 16, 16)
    for training in (True, False):
        features = image_features.clone().requires_grad_(True)
        heads.train(training)
        scores, _ = heads._run_stage([features], [proposals], 0)
        scores.sum().backward()
        grads[training] = features.grad
    assert torch.allclose(grads[True] * stages, grads[False]), (
        grads[True].sum(),
        grads[False].sum(),
    )
    assert grads[False].abs().sum() > 0


def test_compiled_ops_standin_fails_clearly():
    from detectron2.layers.rotated_boxes import pairwise_iou_rotated

    with pytest.raises(RuntimeError, match="installed without compiled ops.*box_iou_rotated"):
        pairwise_iou_rotated(torch.zeros(1, 5), torch.zeros(1, 5))


def test_ddp_wrapper_is_identity_single_process():
    model = torch.nn.Linear(2, 2)
    assert compat.create_ddp_model(model) is model
