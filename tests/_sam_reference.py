"""Import the official implementations (test-only dependencies) without torchvision or timm.

``segment-anything`` (Meta) imports torchvision in its predictor/transforms and mask generator, and the
MobileSAM package (``mobilesam-mirror`` on PyPI, the upstream MobileSAM code) imports timm, which needs
torchvision. Neither may be installed here (torchvision breaks this torch build), so before importing
them we register minimal stand-ins providing only the names those modules import:

- ``torchvision.transforms.functional.to_pil_image`` / ``resize``: for a uint8 H x W x 3 array and a PIL
  image, exactly what torchvision does on PIL input (``Image.fromarray``; ``Image.resize((w, h), BILINEAR)``);
- ``torchvision.ops.boxes.batched_nms`` / ``box_area``: importable but raising if called (the tests do
  not run the official mask generator);
- ``timm.models.layers.DropPath`` / ``to_2tuple`` / ``trunc_normal_`` and ``timm.models.registry.register_model``:
  used by MobileSAM's TinyViT at construction only (drop path is 0, so DropPath is never built).
"""
from __future__ import annotations

import importlib
import sys
import types

import pytest


def _module(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    mod.__seglab_stub__ = True
    return mod


def _install_stubs() -> None:
    if "torchvision" not in sys.modules:
        from PIL import Image

        def to_pil_image(arr):
            return Image.fromarray(arr)

        def resize(img, size):
            h, w = size
            return img.resize((w, h), Image.BILINEAR)

        def _not_here(*args, **kwargs):
            raise NotImplementedError("torchvision stand-in: not available in seglab's tests")

        tv = _module("torchvision")
        tv.transforms = _module("torchvision.transforms")
        tv.transforms.functional = _module("torchvision.transforms.functional", resize=resize,
                                           to_pil_image=to_pil_image)
        tv.ops = _module("torchvision.ops")
        tv.ops.boxes = _module("torchvision.ops.boxes", batched_nms=_not_here, box_area=_not_here)
        for m in (tv, tv.transforms, tv.transforms.functional, tv.ops, tv.ops.boxes):
            sys.modules[m.__name__] = m
    if "timm" not in sys.modules:
        import torch

        class DropPath(torch.nn.Identity):
            def __init__(self, drop_prob=0.0):
                super().__init__()

        timm = _module("timm")
        timm.models = _module("timm.models")
        timm.models.layers = _module("timm.models.layers", DropPath=DropPath,
                                     to_2tuple=lambda x: tuple(x) if isinstance(x, (tuple, list)) else (x, x),
                                     trunc_normal_=torch.nn.init.trunc_normal_)
        timm.models.registry = _module("timm.models.registry", register_model=lambda fn: fn)
        for m in (timm, timm.models, timm.models.layers, timm.models.registry):
            sys.modules[m.__name__] = m


def official(package: str):
    """``segment_anything`` or ``mobile_sam`` (the official code), or skip the test with the reason."""
    pip_name = {"segment_anything": "segment-anything", "mobile_sam": "mobilesam-mirror"}[package]
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"reference implementation {package!r} not installed (pip install --no-deps {pip_name})")
    _install_stubs()
    return importlib.import_module(package)
