"""SharedTrunkDetectors: one trunk pass per step, K detectors with their own losses, stand-alone
checkpoints and evaluation."""

import os

import pytest
import torch

from detectron2.config import LazyCall as L
from detectron2.config import instantiate
from detectron2.evaluation import DatasetEvaluator
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage
from freezedet.engine import do_test, load_config
from freezedet.model_zoo import configs_root
from freezedet.evaluation import PerHeadEvaluator
from freezedet.modeling.meta_arch import ALL_HEADS, SharedTrunkDetectors

CONFIG = os.path.join(configs_root(), "DeepForest", "shared_trunk_effl0_frozen.py")


def _shrink(cfg):
    for det in cfg.model.detectors:
        det.roi_heads.batch_size_per_image = 32
        det.proposal_generator.pre_nms_topk = (200, 100)
        det.proposal_generator.post_nms_topk = (50, 50)


@pytest.fixture(scope="module")
def cfg():
    cfg = load_config(CONFIG)
    _shrink(cfg)
    return cfg


@pytest.fixture(scope="module")
def model(cfg):
    torch.manual_seed(0)
    return instantiate(cfg.model)


def _inputs(n=2, size=128):
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        inst = Instances((size, size))
        inst.gt_boxes = Boxes(torch.tensor([[10.0, 12.0, 60.0, 70.0], [70.0, 20.0, 120.0, 90.0]]))
        inst.gt_classes = torch.tensor([0, 0])
        image = torch.randint(0, 255, (3, size, size), generator=g, dtype=torch.uint8)
        out.append({"image": image, "instances": inst, "height": size, "width": size})
    return out


def test_one_step_one_trunk_pass_gradients_only_in_heads(model):
    assert model.head_names == ["fpn", "nasfpn", "cascade_nasfpn"]
    model.train()
    model.zero_grad()
    calls = model.trunk.trunk_calls
    with EventStorage():  # 160 px: FPN would pad to 160, NAS-FPN to 256; all must share one
        losses = model(_inputs(size=160))
    assert model.trunk.trunk_calls == calls + 1, "the trunk must run once per step"
    for name in model.head_names:
        mine = [k for k in losses if k.startswith(name + "/")]
        assert f"{name}/loss_rpn_cls" in mine, f"{name}: {sorted(losses)}"
    assert "cascade_nasfpn/loss_box_reg_stage2" in losses
    assert len(losses) == 4 + 4 + 8, sorted(losses)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert all(p.grad is None for p in model.trunk.parameters())
    assert not any(p.requires_grad for p in model.trunk.parameters())
    for name, det in zip(model.head_names, model.detectors):
        grads = [p.grad for p in det.parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads), f"{name}: parameters without gradient"
        assert sum(g.abs().sum() for g in grads) > 0, f"{name}: zero gradients"


def test_head_export_loads_into_the_standalone_detector(cfg, model, tmp_path):
    model.eval()
    inputs = [{k: v for k, v in x.items() if k != "instances"} for x in _inputs(1)]
    paths = model.export_heads(str(tmp_path))
    assert [os.path.basename(p) for p in paths] == [
        "model_fpn.pth",
        "model_nasfpn.pth",
        "model_cascade_nasfpn.pth",
    ]
    for i, name in [(2, "cascade_nasfpn")]:  # the most complex head; others share the code path
        standalone = instantiate(cfg.model.detectors[i]).eval()
        standalone.load_state_dict(torch.load(paths[i])["model"], strict=True)
        model.eval_head = name
        with torch.no_grad():
            shared = model(inputs)[0]["instances"]
            alone = standalone(inputs)[0]["instances"]
        assert len(alone) > 0, f"{name}: nothing detected, the comparison would be empty"
        torch.testing.assert_close(shared.pred_boxes.tensor, alone.pred_boxes.tensor)
        torch.testing.assert_close(shared.scores, alone.scores)
    model.eval_head = None


def test_checkpoint_in_standalone_layout_loads_the_trunk(model):
    key = "trunk.conv_stem.weight"
    w = model.trunk.trunk.conv_stem.weight
    new = torch.randn_like(w)
    result = model.load_state_dict({"backbone.bottom_up." + key: new}, strict=False)
    assert torch.equal(model.trunk.trunk.conv_stem.weight, new)
    assert "trunk." + key not in result.missing_keys and not result.unexpected_keys


def test_trainable_trunk_is_refused(cfg):
    c = cfg.model.copy()
    c.trunk.mode = "finetune"
    with pytest.raises(ValueError, match="needs a frozen trunk"):
        instantiate(c)


class _CountingEvaluator(DatasetEvaluator):
    output_dirs = []  # of every instance, in construction order

    def __init__(self, output_dir=None):
        self.output_dir = output_dir
        self.output_dirs.append(output_dir)

    def reset(self):
        self.n = 0

    def process(self, inputs, outputs):
        self.n += sum(len(o["instances"]) >= 0 for o in outputs)

    def evaluate(self):
        return {"bbox": {"images": self.n}}


def test_all_heads_inference_equals_each_head_alone(model):
    model.eval()
    inputs = [{k: v for k, v in x.items() if k != "instances"} for x in _inputs(2)]
    calls = []
    hook = model.trunk.register_forward_hook(lambda *args: calls.append(1))
    try:
        with torch.no_grad():
            model.eval_head = ALL_HEADS
            together = model(inputs)
            assert len(calls) == 1, "all heads must come from one trunk pass"
            for name in model.head_names:
                model.eval_head = name
                alone = model(inputs)
                for i in range(len(inputs)):
                    a, b = together[i][name]["instances"], alone[i]["instances"]
                    torch.testing.assert_close(a.pred_boxes.tensor, b.pred_boxes.tensor)
                    torch.testing.assert_close(a.scores, b.scores)
            model.eval_head = "retinanet"
            with pytest.raises(KeyError, match="eval_head='retinanet': no such head"):
                model(inputs)
    finally:
        hook.remove()
        model.eval_head = None


def test_per_head_evaluator_names_a_missing_head():
    evaluator = PerHeadEvaluator({"fpn": _CountingEvaluator()})
    evaluator.reset()
    with pytest.raises(KeyError, match="an output has no head 'fpn'"):
        evaluator.process([{}], [{"instances": []}])


def test_do_test_evaluates_each_head_in_one_pass(cfg, model, synthetic_dataset, tmp_path):
    c = cfg.copy()
    c.dataloader.test.dataset.names = synthetic_dataset[1]
    c.dataloader.test.num_workers = 0
    c.dataloader.evaluator = L(_CountingEvaluator)()
    c.train.output_dir = str(tmp_path)
    seen = []
    forward = SharedTrunkDetectors.forward

    def spy(self, batched_inputs):
        seen.append(self.eval_head)
        return forward(self, batched_inputs)

    SharedTrunkDetectors.forward = spy
    _CountingEvaluator.output_dirs.clear()
    try:
        results = do_test(c, model.eval())
    finally:
        SharedTrunkDetectors.forward = forward
    assert results == {f"{h}/bbox": {"images": 4} for h in model.head_names}
    base = os.path.join(str(tmp_path), "inference")
    assert _CountingEvaluator.output_dirs == [os.path.join(base, h) for h in model.head_names]
    assert seen == [ALL_HEADS] * 4  # one forward (one trunk pass) per test image
    assert model.eval_head is None
