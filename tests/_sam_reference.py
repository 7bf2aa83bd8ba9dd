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
from functools import partial

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


def real_weights(filename: str = "mobile_sam.pt"):
    """The path of a real checkpoint in ``$SEGLAB_WEIGHTS`` (or the default cache), or skip with the reason."""
    from seglab.models.sam.build import weights_dir

    path = weights_dir() / filename
    if not path.is_file():
        pytest.skip(f"{filename} not found in {weights_dir()} (run ../shared/tools/fetch_weights.sh and set "
                    "SEGLAB_WEIGHTS)")
    return path


def bsds_image(data_dir, index: int = 0):
    """A real BSDS500 test image (``H x W x 3`` uint8)."""
    import numpy as np
    from PIL import Image

    files = sorted((data_dir / "bsds500" / "images" / "test").glob("*.jpg"))
    if not files:
        pytest.skip(f"no BSDS500 test images under {data_dir}")
    return np.asarray(Image.open(files[index]).convert("RGB"))


def randomize_(module, seed: int = 0, scale: float = 0.2):
    """Fill every parameter and buffer of ``module`` with seeded random values (norm weights around 1),
    so equivalence is checked on non-trivial weights (zero-initialised relative positions included)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict(keep_vars=True).items():  # not pixel_mean / pixel_std
            if not t.is_floating_point():
                continue
            noise = torch.randn(t.shape, generator=g) * scale
            if "norm" in name and name.endswith("weight") or name.endswith("running_var"):
                noise = 1 + noise.abs()
            t.copy_(noise)
    return module


TINY = dict(img_size=256, embed=64, depth=3, heads=4, window=5, global_idx=(1,), dim=32)


def tiny_sam():
    """A small SAM (256 x 256 input, 16 x 16 windows-with-padding ViT, 32-channel decoder), our code."""
    from seglab.models.sam.image_encoder import ImageEncoderViT
    from seglab.models.sam.mask_decoder import MaskDecoder
    from seglab.models.sam.prompt_encoder import PromptEncoder
    from seglab.models.sam.sam import Sam
    from seglab.models.sam.transformer import TwoWayTransformer

    t = TINY
    grid = t["img_size"] // 16
    return Sam(ImageEncoderViT(img_size=t["img_size"], embed_dim=t["embed"], depth=t["depth"], num_heads=t["heads"],
                               window_size=t["window"], global_attn_indexes=t["global_idx"], out_chans=t["dim"]),
               PromptEncoder(embed_dim=t["dim"], image_embedding_size=(grid, grid),
                             input_image_size=(t["img_size"],) * 2, mask_in_chans=16),
               MaskDecoder(transformer=TwoWayTransformer(depth=2, embedding_dim=t["dim"], num_heads=4, mlp_dim=64),
                           transformer_dim=t["dim"], iou_head_hidden_dim=t["dim"])).eval()


def tiny_official_sam():
    """The same small SAM built from the official package's modules."""
    import torch
    from segment_anything.modeling import ImageEncoderViT as VitRef, MaskDecoder as DecRef, \
        PromptEncoder as PeRef, Sam as SamRef, TwoWayTransformer as TwtRef

    t = TINY
    grid = t["img_size"] // 16
    return SamRef(VitRef(img_size=t["img_size"], embed_dim=t["embed"], depth=t["depth"], num_heads=t["heads"],
                         norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), use_rel_pos=True,
                         window_size=t["window"], global_attn_indexes=t["global_idx"], out_chans=t["dim"]),
                  PeRef(embed_dim=t["dim"], image_embedding_size=(grid, grid), input_image_size=(t["img_size"],) * 2,
                        mask_in_chans=16),
                  DecRef(transformer=TwtRef(depth=2, embedding_dim=t["dim"], num_heads=4, mlp_dim=64),
                         transformer_dim=t["dim"], iou_head_hidden_dim=t["dim"]),
                  pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375]).eval()
