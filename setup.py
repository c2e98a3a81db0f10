#!/usr/bin/env python
"""freezedet: detectron2 detection on frozen, reused image-classification backbones.

The exact, verified stack is pinned in ``requirements/constraints.txt`` (``make demo`` /
``make test`` install it); the ranges below are deliberately loose.
"""

import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildPyWithConfigs(build_py):
    """Ship the top-level ``configs/`` as ``freezedet/configs`` so model_zoo.get_config works."""

    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "freezedet", "configs")
        if os.path.isdir(target):
            shutil.rmtree(target)
        shutil.copytree(
            os.path.join(HERE, "configs"), target, ignore=shutil.ignore_patterns("__pycache__")
        )


setup(
    name="freezedet",
    version="0.1.0",
    description="detectron2 extension for detection on frozen ImageNet classification backbones",
    long_description=open(os.path.join(HERE, "README.md")).read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=("freezedet", "freezedet.*")),
    python_requires=">=3.9",
    install_requires=[
        "torch>=2.0",
        "torchvision>=0.15",
        "timm>=0.9",
        "numpy",
        "pillow",
        "opencv-contrib-python-headless>=4.5",
        "matplotlib",
        "pycocotools>=2.0.2",
        "shapely>=2.0",  # detectron2 crops polygon masks with it (LSJ's FixedSizeCrop)
        "fvcore>=0.1.5,<0.1.6",
        "iopath>=0.1.7,<0.1.10",
        "omegaconf>=2.1",
        "hydra-core>=1.1",
        "cloudpickle",
        "tensorboard",
    ],
    extras_require={
        "lvis": ["lvis"],
        "fast-eval": ["faster-coco-eval>=1.6"],
        "export": ["onnx>=1.14", "onnxruntime>=1.16"],  # ONNX export + ONNX Runtime inference
        "dev": ["pytest>=7.3", "scikit-image", "black"],
    },
    cmdclass={"build_py": BuildPyWithConfigs},
    # detectron2 is not on PyPI under its name: tools/install_detectron2.py installs it.
)
