"""Every detectron2-version / torch / numpy shim freezedet needs, in one place.

freezedet runs on two detectron2 routes (docs/detectron2_compatibility.md): PyPI ``pb1-detectron2==0.6`` (detectron2
v0.6's Python, installed without compiled ops) and detectron2 built from source (main). v0.6 on
torch 2 / Python 3.11 has a few defects. Each fix below is guarded by a *behavioural* probe, so it
is a no-op on a detectron2 that is already fixed, and is applied once, at ``import freezedet``.

Runtime fixes (applied by :func:`apply_all`):

1. ``MapDataset`` fallback: v0.6 calls ``random.sample`` on a ``set`` when a mapped sample is
   ``None`` (TypeError on Python >= 3.11). Fixed by sampling from a sorted list.
2. ``hooks.LRScheduler`` checkpointing: v0.6 only saves/loads schedulers that subclass the
   deprecated ``torch.optim.lr_scheduler._LRScheduler``; torch 2's built-in schedulers subclass
   ``LRScheduler`` and their state was silently dropped, so ``--resume`` restarted their schedule.
3. ``detectron2.export`` imports caffe2 (removed from torch 2) in its ``__init__``, which breaks
   ``from detectron2.export import TracingAdapter`` and ``detectron2.utils.analysis`` (FLOP
   counting). The package is registered without its caffe2 parts, as detectron2 main does; the
   caffe2 exporter's names (``Caffe2Tracer`` ...) raise an ``ImportError`` saying what to use.
4. ``detectron2.model_zoo`` imports ``pkg_resources`` (removed from setuptools 81) for one call,
   ``resource_filename``, which breaks ``model_zoo.get_config`` and ``detectron2.utils.testing``.
   It is imported with a stand-in for that one function, visible to nothing else: ``import
   pkg_resources`` elsewhere still fails as before.

9. ``CascadeROIHeads._run_stage`` calls the autograd Function ``_ScaleGradient`` (an identity
   in the forward pass that scales gradients) also in inference, which ``torch.jit.trace``
   cannot record ("Could not export Python function call '_ScaleGradient'"), so no Cascade
   R-CNN traces for export. detectron2 main calls it only in training; so does the fix.

freezedet's own pure-Python install (``tools/install_detectron2.py``) patches 3 and 4 into the
installed sources, as detectron2 main fixed them, so they work there without ``import freezedet``
and both probes find nothing to fix; the runtime fixes serve a v0.6 installed some other way.

Helpers used instead of v0.6 APIs that hard-code CUDA:

5. :func:`launch`: v0.6's ``launch`` asserts CUDA and uses NCCL. On CUDA we call detectron2's
   own ``launch``; on CPU we start the same number of processes with the gloo backend.
6. :func:`create_ddp_model`: DDP on CPU needs ``device_ids=None``.
7. Import-time noise: detectron2 v0.6 calls ``torch.jit.script`` at import, which torch 2.14
   deprecates with a FutureWarning per call; that warning is silenced (only that message).
8. :data:`HAS_COMPILED_OPS`: False on the pure-Python install (``detectron2._C`` is a stand-in
   whose ops raise a clear error); used to pick implementations that need no compiled op (e.g.
   the COCO evaluator's ``use_fast_impl``).
"""

import importlib
import importlib.util
import logging
import os
import sys
import types
import warnings
from datetime import timedelta

warnings.filterwarnings(
    "ignore", message="`torch.jit.script` is deprecated", category=FutureWarning
)

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

import detectron2  # noqa: E402

__all__ = [
    "HAS_COMPILED_OPS",
    "apply_all",
    "create_ddp_model",
    "import_export",
    "launch",
    "applied_fixes",
]

logger = logging.getLogger(__name__)

try:
    from detectron2 import _C as _d2_C

    HAS_COMPILED_OPS = not getattr(_d2_C, "FREEZEDET_STANDIN", False)
except ImportError:
    HAS_COMPILED_OPS = False

# names of the fixes that were needed (and applied) on this detectron2
applied_fixes = []


# 1. MapDataset -----------------------------------------------------------------------------
def _map_dataset_fallback_broken() -> bool:
    from detectron2.data.common import MapDataset

    calls = []

    def first_call_fails(x):
        calls.append(x)
        return None if len(calls) == 1 else x

    try:
        MapDataset([0, 1], first_call_fails)[0]
    except TypeError:
        return True
    return False


def _fix_map_dataset():
    from detectron2.data.common import MapDataset

    def __getitem__(self, idx):
        retry_count = 0
        cur_idx = int(idx)
        while True:
            data = self._map_func(self._dataset[cur_idx])
            if data is not None:
                self._fallback_candidates.add(cur_idx)
                return data
            retry_count += 1
            self._fallback_candidates.discard(cur_idx)
            cur_idx = self._rng.sample(sorted(self._fallback_candidates), k=1)[0]
            if retry_count >= 3:
                logging.getLogger(__name__).warning(
                    "Failed to apply `_map_func` for idx: {}, retry count: {}".format(
                        idx, retry_count
                    )
                )

    MapDataset.__getitem__ = __getitem__


# 2. LRScheduler hook state ---------------------------------------------------------------------
def _lr_hook_drops_torch_scheduler_state() -> bool:
    from detectron2.engine import hooks

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1)
    return hooks.LRScheduler(opt, sched).state_dict() == {}


def _fix_lr_hook_state():
    from detectron2.engine import hooks

    base = torch.optim.lr_scheduler.LRScheduler

    def state_dict(self):
        if isinstance(self.scheduler, base):
            return self.scheduler.state_dict()
        return {}

    def load_state_dict(self, state_dict):
        if isinstance(self.scheduler, base):
            logging.getLogger(__name__).info("Loading scheduler from state_dict ...")
            self.scheduler.load_state_dict(state_dict)

    hooks.LRScheduler.state_dict = state_dict
    hooks.LRScheduler.load_state_dict = load_state_dict


# 3. detectron2.export without caffe2 -------------------------------------------------------------
_CAFFE2_EXPORTER = (
    "Caffe2Tracer",
    "Caffe2Model",
    "export_caffe2_model",
    "export_onnx_model",
    "add_export_config",
)


def _export_imports_caffe2() -> bool:
    try:
        importlib.import_module("detectron2.export")
    except ImportError as e:
        return (e.name or "").split(".")[0] == "caffe2"
    return False


def _caffe2_exporter_unavailable(name):
    """Module ``__getattr__`` of the caffe2-free ``detectron2.export``."""
    if name in _CAFFE2_EXPORTER:
        raise ImportError(
            f"detectron2.export.{name} is detectron2's caffe2 exporter, which needs caffe2 "
            "(removed from PyTorch 2: torch<2 built with caffe2). Without caffe2, export with "
            "detectron2.export.TracingAdapter (torch.jit.trace) or "
            "detectron2.export.scripting_with_instances.",
            name="caffe2",
        )
    raise AttributeError(f"module 'detectron2.export' has no attribute {name!r}")


def _register_export_without_caffe2():
    spec = importlib.util.find_spec("detectron2.export")
    module = types.ModuleType("detectron2.export", "detectron2.export without its caffe2 parts")
    module.__path__ = list(spec.submodule_search_locations)
    module.__file__ = spec.origin
    module.__spec__ = spec
    module.__package__ = "detectron2.export"
    module.__getattr__ = _caffe2_exporter_unavailable
    sys.modules["detectron2.export"] = module
    detectron2.export = module
    from detectron2.export.flatten import TracingAdapter
    from detectron2.export.torchscript import dump_torchscript_IR, scripting_with_instances

    module.TracingAdapter = TracingAdapter
    module.scripting_with_instances = scripting_with_instances
    module.dump_torchscript_IR = dump_torchscript_IR
    module.__all__ = ["TracingAdapter", "scripting_with_instances", "dump_torchscript_IR"]


def import_export() -> types.ModuleType:
    """``import detectron2.export`` (caffe2-free where caffe2 is gone, see fix 3).

    ``TracingAdapter``, ``scripting_with_instances`` and ``dump_torchscript_IR`` are available
    on either route.
    """
    return importlib.import_module("detectron2.export")


# 4. detectron2.model_zoo without pkg_resources ---------------------------------------------------
def _model_zoo_imports_pkg_resources() -> bool:
    try:
        importlib.import_module("detectron2.model_zoo")
    except ImportError as e:
        return e.name == "pkg_resources"
    return False


def _resource_filename(package: str, resource_name: str) -> str:
    """``pkg_resources.resource_filename`` for a package installed as files (detectron2's)."""
    return os.path.join(os.path.dirname(importlib.import_module(package).__file__), resource_name)


def _import_model_zoo_without_pkg_resources():
    # model_zoo's other imports first, so that the stand-in below is seen by model_zoo.py alone
    for name in ("detectron2.checkpoint", "detectron2.config", "detectron2.modeling"):
        importlib.import_module(name)
    standin = types.ModuleType("pkg_resources", "freezedet.compat: resource_filename only")
    standin.resource_filename = _resource_filename
    sys.modules["pkg_resources"] = standin
    try:
        importlib.import_module("detectron2.model_zoo")
    finally:
        del sys.modules["pkg_resources"]


# 9. Cascade R-CNN traceable in inference ---------------------------------------------------------
def _cascade_scales_gradient_in_inference() -> bool:
    from detectron2.modeling.roi_heads import cascade_rcnn

    calls = []

    class Recorder:
        @staticmethod
        def apply(x, scale):
            calls.append(scale)
            return x

    stage = types.SimpleNamespace(
        training=False,
        num_cascade_stages=3,
        box_pooler=lambda features, boxes: features[0],
        box_head=[lambda x: x],
        box_predictor=[lambda x: x],
    )
    original = cascade_rcnn._ScaleGradient
    cascade_rcnn._ScaleGradient = Recorder
    try:
        cascade_rcnn.CascadeROIHeads._run_stage(stage, [torch.zeros(1)], [], 0)
    finally:
        cascade_rcnn._ScaleGradient = original
    return bool(calls)


def _fix_cascade_inference_trace():
    from detectron2.modeling.roi_heads import cascade_rcnn

    def _run_stage(self, features, proposals, stage):
        box_features = self.box_pooler(features, [x.proposal_boxes for x in proposals])
        # the losses of all stages are summed; their gradients into the shared features are
        # scaled down by the number of stages (an identity in the forward pass)
        if self.training:
            box_features = cascade_rcnn._ScaleGradient.apply(
                box_features, 1.0 / self.num_cascade_stages
            )
        box_features = self.box_head[stage](box_features)
        return self.box_predictor[stage](box_features)

    cascade_rcnn.CascadeROIHeads._run_stage = _run_stage


# 5. launch ----------------------------------------------------------------------------------------
def _cpu_worker(
    local_rank, main_func, world_size, procs_per_machine, machine_rank, dist_url, args, timeout
):
    from detectron2.utils import comm

    global_rank = machine_rank * procs_per_machine + local_rank
    dist.init_process_group(
        backend="gloo",
        init_method=dist_url,
        world_size=world_size,
        rank=global_rank,
        timeout=timeout,
    )
    num_machines = world_size // procs_per_machine
    if hasattr(comm, "create_local_process_group"):  # detectron2 main
        comm.create_local_process_group(procs_per_machine)
    else:  # v0.6
        for i in range(num_machines):
            ranks = list(range(i * procs_per_machine, (i + 1) * procs_per_machine))
            pg = dist.new_group(ranks)
            if i == machine_rank:
                comm._LOCAL_PROCESS_GROUP = pg
    comm.synchronize()
    main_func(*args)


def launch(
    main_func,
    num_processes_per_machine,
    num_machines=1,
    machine_rank=0,
    dist_url=None,
    args=(),
    timeout=timedelta(minutes=30),
):
    """detectron2's ``launch`` that also works without CUDA.

    With CUDA, this is detectron2's own ``launch`` (one process per GPU, NCCL). Without CUDA,
    ``num_processes_per_machine`` CPU processes per machine are started with the gloo backend
    (detectron2 v0.6's ``launch`` asserts CUDA and NCCL).
    """
    from detectron2.engine import launch as d2_launch

    if torch.cuda.is_available():
        return d2_launch(
            main_func,
            num_processes_per_machine,
            num_machines,
            machine_rank,
            dist_url,
            args=args,
            timeout=timeout,
        )
    world_size = num_machines * num_processes_per_machine
    if world_size == 1:
        return main_func(*args)
    from detectron2.engine.launch import _find_free_port

    if dist_url == "auto":
        assert num_machines == 1, "dist_url=auto not supported in multi-machine jobs."
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    torch.multiprocessing.spawn(
        _cpu_worker,
        nprocs=num_processes_per_machine,
        args=(
            main_func,
            world_size,
            num_processes_per_machine,
            machine_rank,
            dist_url,
            args,
            timeout,
        ),
        daemon=False,
    )


# 6. DDP ---------------------------------------------------------------------------------------------
def create_ddp_model(model, *, fp16_compression=False, **kwargs):
    """Wrap ``model`` in DDP if world size > 1; ``device_ids=None`` for CPU models."""
    from detectron2.utils import comm
    from torch.nn.parallel import DistributedDataParallel

    if comm.get_world_size() == 1:
        return model
    on_cuda = next(model.parameters()).is_cuda
    if "device_ids" not in kwargs:
        kwargs["device_ids"] = [comm.get_local_rank()] if on_cuda else None
    ddp = DistributedDataParallel(model, **kwargs)
    if fp16_compression and on_cuda:
        from torch.distributed.algorithms.ddp_comm_hooks import default as comm_hooks

        ddp.register_comm_hook(state=None, hook=comm_hooks.fp16_compress_hook)
    return ddp


_FIXES = [
    ("MapDataset random.sample on a set", _map_dataset_fallback_broken, _fix_map_dataset),
    (
        "LRScheduler hook drops torch 2 scheduler state",
        _lr_hook_drops_torch_scheduler_state,
        _fix_lr_hook_state,
    ),
    (
        "detectron2.export imports caffe2",
        _export_imports_caffe2,
        _register_export_without_caffe2,
    ),
    (
        "detectron2.model_zoo imports pkg_resources",
        _model_zoo_imports_pkg_resources,
        _import_model_zoo_without_pkg_resources,
    ),
    (
        "CascadeROIHeads scales gradients in inference (untraceable)",
        _cascade_scales_gradient_in_inference,
        _fix_cascade_inference_trace,
    ),
]


def apply_all():
    """Apply each runtime fix whose probe shows the defect. Idempotent."""
    for name, probe, fix in _FIXES:
        if name not in applied_fixes and probe():
            fix()
            applied_fixes.append(name)
            logger.debug("freezedet.compat: applied fix '%s'", name)


apply_all()
