"""detectron2's own public API in freezedet's environment: every public module imports, the
model zoo loads yacs and LazyConfig configs and builds the stock Mask R-CNN FPN on CPU, the
features the pure-Python route lacks fail with an error that says what to do, and a freezedet
detector traces with ``TracingAdapter``.

In-process tests run after ``import freezedet`` (tests/conftest.py); the subprocess test checks
what works without it."""

import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from detectron2.config import instantiate
from detectron2.data import DatasetCatalog
from detectron2.data.detection_utils import read_image
from freezedet import compat
from freezedet.model_zoo import get_config as freezedet_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PUBLIC_SUBPACKAGES = (
    "checkpoint",
    "config",
    "data",
    "engine",
    "evaluation",
    "export",
    "layers",
    "model_zoo",
    "modeling",
    "solver",
    "structures",
    "utils",
)
# Not imported, by design: detectron2's caffe2 exporter needs caffe2, which torch 2 no longer has
# (caffe2_export also needs onnx). Modules that use compiled ops import on the pure-Python route
# (detectron2._C is a stand-in there), so none is skipped for that.
NEEDS_CAFFE2 = (
    "detectron2.export.api",
    "detectron2.export.c10",
    "detectron2.export.caffe2_export",
    "detectron2.export.caffe2_inference",
    "detectron2.export.caffe2_modeling",
    "detectron2.export.caffe2_patch",
    "detectron2.export.shared",
)
# the modules the two broken imports of detectron2 v0.6 used to take down
ONCE_BROKEN = (
    "detectron2.model_zoo.model_zoo",
    "detectron2.utils.testing",
    "detectron2.export.flatten",
    "detectron2.export.torchscript",
    "detectron2.utils.analysis",
)
YACS_CONFIG = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml"
LAZY_CONFIG = "new_baselines/mask_rcnn_R_50_FPN_100ep_LSJ.py"


def _import_public_modules(subpackages, skip):
    """Import ``detectron2.<sub>`` and every module below it: (imported, {module: error})."""
    import importlib
    import pkgutil

    imported, failures = [], {}
    for sub in subpackages:
        name = f"detectron2.{sub}"
        try:
            package = importlib.import_module(name)
        except Exception as e:
            failures[name] = repr(e)
            continue
        imported.append(name)
        walk = pkgutil.walk_packages(
            package.__path__, name + ".", onerror=lambda n: failures.setdefault(n, "walk")
        )
        for info in walk:
            if info.name in skip:
                continue
            try:
                importlib.import_module(info.name)
                imported.append(info.name)
            except Exception as e:
                failures[info.name] = repr(e)
    return imported, failures


def _installed_build() -> int:
    """FREEZEDET_BUILD of this detectron2; 0 unless it is freezedet's pure-Python build."""
    from detectron2 import _C

    if not getattr(_C, "FREEZEDET_STANDIN", False):
        return 0
    build = getattr(_C, "FREEZEDET_BUILD", 1)  # build 1's stand-in answers every name with an op
    return build if isinstance(build, int) else 1


def _current_build() -> int:
    with open(os.path.join(ROOT, "tools", "detectron2_C_standin.py")) as f:
        return int(re.search(r"^FREEZEDET_BUILD = (\d+)$", f.read(), re.M).group(1))


STALE_BUILD = _installed_build() not in (0, _current_build())
stale_build = pytest.mark.skipif(
    STALE_BUILD,
    reason="detectron2 here is an older freezedet pure-Python build: `make install` rebuilds it",
)


def _real_image(fmt, box=(0, 256, 0, 256)):
    """A crop of a DeepForest validation tile as a CHW float tensor."""
    import freezedet.data  # noqa: F401  (registers deepforest_val)

    y0, y1, x0, x1 = box
    img = read_image(DatasetCatalog.get("deepforest_val")[0]["file_name"], format=fmt)
    return torch.as_tensor(img[y0:y1, x0:x1].transpose(2, 0, 1).copy()).float()


def test_every_public_module_imports():
    imported, failures = _import_public_modules(PUBLIC_SUBPACKAGES, set(NEEDS_CAFFE2))
    assert failures == {}, failures
    missing = [m for m in ONCE_BROKEN if m not in imported]
    assert not missing, missing
    assert len(imported) > 100, len(imported)


@stale_build
def test_detectron2_api_without_import_freezedet():
    """In freezedet's own install (and on detectron2 main) nothing needs ``import freezedet``."""
    runtime_fixed = {
        "detectron2.export imports caffe2",
        "detectron2.model_zoo imports pkg_resources",
    }
    if _installed_build() == 0 and runtime_fixed & set(compat.applied_fixes):
        pytest.skip(
            "a detectron2 v0.6 not installed by freezedet: fixed at `import freezedet` only"
        )
    code = inspect.getsource(_import_public_modules) + (
        "import json, sys\n"
        f"imported, failures = _import_public_modules({PUBLIC_SUBPACKAGES!r}, {NEEDS_CAFFE2!r})\n"
        "from detectron2 import model_zoo\n"
        "from detectron2.export import TracingAdapter\n"
        f"yacs = model_zoo.get_config({YACS_CONFIG!r})\n"
        f"lazy = model_zoo.get_config({LAZY_CONFIG!r})\n"
        "try:\n"
        "    from detectron2.export import Caffe2Tracer\n"
        "    caffe2 = 'imported'\n"
        "except ImportError as e:\n"
        "    caffe2 = str(e)\n"
        "print(json.dumps(dict(imported=imported, failures=failures, freezedet=[\n"
        "    m for m in sys.modules if m.split('.')[0] == 'freezedet'], caffe2=caffe2,\n"
        "    yacs=yacs.MODEL.META_ARCHITECTURE, lazy=lazy.model._target_.__name__)))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["freezedet"] == [], "freezedet was imported"
    assert result["failures"] == {}, result["failures"]
    assert all(m in result["imported"] for m in ONCE_BROKEN)
    assert result["yacs"] == "GeneralizedRCNN" and result["lazy"] == "GeneralizedRCNN"
    if _installed_build() > 0 and importlib.util.find_spec("caffe2") is None:
        assert "caffe2 exporter" in result["caffe2"] and "TracingAdapter" in result["caffe2"]


def _check_mask_rcnn_outputs(model, fmt):
    x = _real_image(fmt, box=(0, 192, 0, 256))
    with torch.no_grad():
        instances = model([{"image": x, "height": 192, "width": 256}])[0]["instances"]
    assert len(instances) == DETECTIONS, len(instances)
    assert set(instances.get_fields()) == {"pred_boxes", "scores", "pred_classes", "pred_masks"}
    assert instances.pred_masks.shape == (DETECTIONS, 192, 256), instances.pred_masks.shape
    assert torch.isfinite(instances.pred_boxes.tensor).all()


# Randomly initialised (no weights are downloaded), the stock R-50 blows 0-255 inputs up to
# activations of ~1e3 and its RPN's boxes degenerate; inputs of unit variance keep them sane, so
# the box and mask heads see real proposals. Few detections: the mask head runs on each.
PIXEL_STD = [57.375, 57.120, 58.395]
DETECTIONS = 10


def test_model_zoo_yacs_config_builds_stock_mask_rcnn_on_cpu():
    from detectron2 import model_zoo
    from detectron2.modeling import build_model

    cfg = model_zoo.get_config(YACS_CONFIG)
    assert cfg.MODEL.MASK_ON and cfg.MODEL.BACKBONE.NAME == "build_resnet_fpn_backbone"
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.PIXEL_STD = PIXEL_STD
    cfg.TEST.DETECTIONS_PER_IMAGE = DETECTIONS
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    _check_mask_rcnn_outputs(model, cfg.INPUT.FORMAT)


def test_model_zoo_lazy_config_builds_stock_mask_rcnn_on_cpu():
    from detectron2 import model_zoo
    from detectron2.modeling import GeneralizedRCNN

    cfg = model_zoo.get_config(LAZY_CONFIG)
    assert cfg.dataloader.train.dataset.names == "coco_2017_train", cfg.dataloader.train.dataset
    cfg.model.pixel_std = PIXEL_STD
    cfg.model.roi_heads.box_predictor.test_topk_per_image = DETECTIONS
    # its box head is 4 convs + 1 fc: 100 test proposals instead of 1000 for CPU time
    cfg.model.proposal_generator.post_nms_topk = (1000, 100)
    torch.manual_seed(0)
    model = instantiate(cfg.model).eval()
    assert isinstance(model, GeneralizedRCNN) and model.roi_heads.mask_on
    _check_mask_rcnn_outputs(model, cfg.model.input_format)


@pytest.mark.skipif(importlib.util.find_spec("caffe2") is not None, reason="caffe2 installed")
def test_caffe2_exporter_says_what_to_use():
    if _installed_build() == 0 and "detectron2.export imports caffe2" not in compat.applied_fixes:
        pytest.skip("detectron2 main: caffe2 is optional there and its exporter names are absent")
    import detectron2.export as export

    message = "caffe2 exporter, which needs caffe2.*TracingAdapter.*scripting_with_instances"
    with pytest.raises(ImportError, match=message):
        from detectron2.export import Caffe2Tracer  # noqa: F401
    with pytest.raises(ImportError, match=message):
        getattr(export, "export_onnx_model")
    assert not hasattr(export, "no_such_name")


@stale_build
@pytest.mark.skipif(compat.HAS_COMPILED_OPS, reason="detectron2 built with its compiled ops")
def test_compiled_only_features_say_what_to_do():
    from detectron2 import _C
    from detectron2.layers import ROIAlignRotated, batched_nms_rotated, nms_rotated
    from detectron2.structures import RotatedBoxes, pairwise_iou_rotated

    boxes = torch.tensor([[10.0, 10, 5, 5, 0], [11, 11, 5, 5, 30]])
    scores = torch.tensor([1.0, 0.5])
    calls = {
        "nms_rotated": lambda: nms_rotated(boxes, scores, 0.5),
        "batched_nms_rotated": lambda: batched_nms_rotated(boxes, scores, torch.zeros(2), 0.5),
        "box_iou_rotated": lambda: pairwise_iou_rotated(RotatedBoxes(boxes), RotatedBoxes(boxes)),
        "ROIAlignRotated": lambda: ROIAlignRotated((7, 7), 1.0, 0)(
            torch.zeros(1, 2, 16, 16), torch.tensor([[0.0, 8, 8, 4, 4, 0]])
        ),
        "DeformConv": lambda: _C.deform_conv_forward(),  # what DeformConv calls on CUDA
        "ModulatedDeformConv": lambda: _C.modulated_deform_conv_forward(),
        "use_fast_impl=False": lambda: _C.COCOevalAccumulate(),
    }
    for feature, call in calls.items():
        with pytest.raises(RuntimeError) as info:
            call()
        text = str(info.value)
        assert "installed without compiled ops" in text, text
        assert "FREEZEDET_DETECTRON2_SRC=/path/to/detectron2 make install" in text, text
        assert feature in text, text


def _detection_rows(instances):
    """One row a detection: box, score, class."""
    return torch.cat(
        [
            instances.pred_boxes.tensor,
            instances.scores[:, None],
            instances.pred_classes[:, None].float(),
        ],
        dim=1,
    )


def test_tracing_adapter_traces_a_freezedet_detector():
    from detectron2.export import TracingAdapter

    cfg = freezedet_config("DeepForest/faster_rcnn_fpn.py")
    cfg.model.backbone.out_channels = 64
    torch.manual_seed(0)
    model = instantiate(cfg.model).eval()
    images = [
        _real_image(cfg.model.input_format, box) for box in [(0, 256, 0, 256), (144, 400, 144, 400)]
    ]

    def inference(model, inputs):
        return [{"instances": model.inference(inputs, do_postprocess=False)[0]}]

    adapter = TracingAdapter(model, [{"image": images[0]}], inference)
    with torch.no_grad():
        traced = torch.jit.trace(adapter, adapter.flattened_inputs)

    def same_outputs():
        for x in images:
            with torch.no_grad():
                eager = model.inference([{"image": x}], do_postprocess=False)[0]
                ours = adapter.outputs_schema(traced(x))[0]["instances"]
            assert len(eager) > 0 and len(ours) == len(eager), (len(ours), len(eager))
            a, b = _detection_rows(ours), _detection_rows(eager)
            # detections of (nearly) equal score may come out in another order: pair each traced
            # detection with its nearest eager one, one to one
            nearest = torch.cdist(a, b, p=float("inf")).min(dim=1)
            assert sorted(nearest.indices.tolist()) == list(range(len(b))), nearest.indices
            assert torch.allclose(a, b[nearest.indices], rtol=1e-4, atol=1e-3), nearest.values.max()
        return ours

    before = same_outputs()
    # the traced graph reads the module's own trunk weights (shared with the eager model)
    with torch.no_grad():
        next(model.backbone.bottom_up.trunk.parameters()).mul_(0.5)
    after = same_outputs()
    assert len(after) != len(before) or not torch.equal(after.scores, before.scores)
