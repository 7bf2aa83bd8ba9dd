"""SETR: a plain ViT encoder with three decoders (Zheng et al., "Rethinking Semantic Segmentation from a
Sequence-to-Sequence Perspective with Transformers", CVPR 2021).

The image is cut into 16 x 16 patches and encoded by ViT-B/16 or ViT-L/16 at 1/16 resolution throughout
(no downsampling pyramid); the decoders differ in how they return to full resolution (Sec. 3.3):

- ``naive``: ``1x1 conv -> BN -> ReLU -> 1x1 conv`` to the classes on the last layer, then bilinear
  upsampling by 16.
- ``pup`` (progressive upsampling): four ``3x3 conv -> BN -> ReLU -> 2x bilinear`` steps on the last layer,
  so no single step upsamples by more than 2, then the classifier at full resolution.
- ``mla`` (multi-level feature aggregation): four evenly spaced layers (e.g. 6, 12, 18, 24 of ViT-L), each
  ``1x1 conv`` to ``channels``, summed top-down (each level adds the deeper ones), then per level
  ``3x3 conv -> 3x3 conv (channels / 2) -> 4x bilinear``; the four streams are concatenated and
  classified at 1/4 resolution.

Any input size works: it is padded to a multiple of 16 and the positional encoding is interpolated.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ParameterError, check_choice, check_range
from .base import SegmentationModel
from .encoders.vit import VIT_CONFIGS, VisionTransformer
from .catalog import register_model

DECODERS = ("naive", "pup", "mla")


def _conv_bn_relu(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class NaiveDecoder(nn.Module):
    """``1x1 conv -> BN -> ReLU`` on the last layer's map (the classifier follows in the head)."""

    def __init__(self, in_channels: int, channels: int = 256):
        super().__init__()
        self.block = _conv_bn_relu(in_channels, channels, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.block(feats[-1])


class PUPDecoder(nn.Module):
    """Progressive upsampling: ``steps`` times ``3x3 conv -> BN -> ReLU -> 2x bilinear``."""

    def __init__(self, in_channels: int, channels: int = 256, steps: int = 4):
        super().__init__()
        self.blocks = nn.ModuleList(_conv_bn_relu(in_channels if i == 0 else channels, channels, 3)
                                    for i in range(steps))

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        for blk in self.blocks:
            x = F.interpolate(blk(x), scale_factor=2, mode="bilinear", align_corners=False)
        return x


class MLADecoder(nn.Module):
    """Multi-level aggregation of ``len(in_channels)`` ViT layers (shallowest first) to 1/4 resolution."""

    def __init__(self, in_channels: list[int], channels: int = 256):
        super().__init__()
        self.reduce = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.streams = nn.ModuleList(
            nn.Sequential(_conv_bn_relu(channels, channels, 3), _conv_bn_relu(channels, channels // 2, 3))
            for _ in in_channels)
        self.out_channels = channels // 2 * len(in_channels)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        acc, outs = None, []
        for f, red, stream in zip(reversed(feats), reversed(self.reduce), reversed(self.streams)):
            acc = red(f) if acc is None else acc + red(f)  # top-down: deepest level first
            outs.append(F.interpolate(stream(acc), scale_factor=4, mode="bilinear", align_corners=False))
        return torch.cat(outs[::-1], dim=1)


@register_model("setr", family="SETR",
                description="ViT-B/16 or ViT-L/16 encoder with the naive, PUP or MLA decoder",
                reference="Zheng et al., SETR, CVPR 2021", default_encoder="vit_l16")
def setr(num_classes: int, *, encoder: str | dict | None = None, in_channels: int = 3, decoder: str = "pup",
         img_size: int = 512, channels: int = 256, drop_path_rate: float = 0.1, dropout: float = 0.1):
    """SETR with ``decoder`` in ``("naive", "pup", "mla")`` on ``encoder`` ``"vit_b16"`` or ``"vit_l16"``
    (or a dict ``patch_size, dim, depth, num_heads`` for a custom ViT, e.g. a tiny one for tests).

    ``img_size`` is the input size the positional encoding is stored for (a 224-pixel Hugging Face
    checkpoint's is resized to it on loading; other sizes are interpolated at run time).
    """
    check_choice("decoder", decoder, DECODERS)
    check_range("channels", channels, 2)
    check_range("dropout", dropout, 0.0, 1.0, high_inclusive=False)
    check_range("drop_path_rate", drop_path_rate, 0.0, 1.0, high_inclusive=False)
    if isinstance(encoder, dict):
        cfg = {k: int(encoder[k]) for k in ("patch_size", "dim", "depth", "num_heads") if k in encoder}
        if len(cfg) != 4 or len(encoder) != 4:
            raise ParameterError(f"parameter 'encoder' as a dict needs exactly patch_size, dim, depth, num_heads; "
                                 f"got {sorted(encoder)}")
    elif (encoder or "vit_l16") in VIT_CONFIGS:
        cfg = VIT_CONFIGS[encoder or "vit_l16"]
    else:
        raise ParameterError(f"unknown SETR encoder {encoder!r}; choose from: {', '.join(VIT_CONFIGS)}")
    if decoder == "mla" and cfg["depth"] < 4:
        raise ParameterError(f"the MLA decoder needs a ViT of depth >= 4, got {cfg['depth']}")
    depth, dim = cfg["depth"], cfg["dim"]
    out_indices = tuple(depth // 4 * i for i in (1, 2, 3, 4)) if decoder == "mla" else (depth,)
    enc = VisionTransformer(in_channels, img_size=img_size, drop_path_rate=drop_path_rate,
                            out_indices=out_indices, **cfg)
    if decoder == "naive":
        dec, out = NaiveDecoder(dim, channels), channels
    elif decoder == "pup":
        dec, out = PUPDecoder(dim, channels), channels
    else:
        dec = MLADecoder(enc.out_channels, channels)
        out = dec.out_channels
    head = nn.Sequential(nn.Dropout2d(dropout) if dropout > 0 else nn.Identity(), nn.Conv2d(out, num_classes, 1))
    return SegmentationModel(enc, dec, head, stride=cfg["patch_size"])
