"""Stand-in for ``detectron2._C`` in a pure-Python detectron2 install.

freezedet installs PyPI ``pb1-detectron2==0.6`` (detectron2 v0.6's Python sources, no C++
sources) without its compiled extension. torchvision supplies NMS and RoIAlign; the few ops only
detectron2's extension provides (deformable conv, rotated boxes, the C++ COCO evaluator) raise a
clear error through this module instead of an ``ImportError`` at import time.

This file is copied to ``detectron2/_C.py`` by ``tools/install_detectron2.py``.
"""

FREEZEDET_STANDIN = True


class CompiledOpUnavailable(RuntimeError):
    pass


def get_compiler_version():
    return "none (pure-Python install by freezedet: no compiled ops)"


def get_cuda_version():
    return "none (pure-Python install by freezedet: no compiled ops)"


def has_cuda():
    return False


def _unavailable(name):
    def op(*args, **kwargs):
        raise CompiledOpUnavailable(
            f"detectron2 was installed without compiled ops; detectron2._C.{name} needs a source "
            "build of detectron2 (see freezedet's README, 'detectron2 from source')."
        )

    op.__name__ = name
    return op


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return _unavailable(name)
