"""SegFormer: Mix Transformer encoder + all-MLP decoder (Xie et al., "SegFormer: Simple and Efficient
Design for Semantic Segmentation with Transformers", NeurIPS 2021).

The decoder (Eq. 4 of the paper) projects each of the four encoder maps to ``C`` channels with a linear
layer, upsamples them to 1/4 of the input, concatenates them, fuses them with a ``4C -> C`` linear layer
(+ BatchNorm + ReLU) and classifies each pixel with a ``C -> K`` linear layer.

Projection, upsampling and fusion are all linear, and bilinear upsampling commutes with a per-pixel
linear map (its weights sum to one), so ``fuse(concat(up(P_i f_i + b_i))) = sum_i up((F_i P_i) f_i) + sum_i
F_i b_i`` where ``F_i`` is the fusion matrix's slice for stage ``i``. :class:`AllMLPDecoder` computes the
right-hand side: the ``C x C_i`` products are formed on the fly (negligible, and differentiable, so
training uses the same code), every map is projected at its own resolution and the big ``4C``-channel
concatenation at 1/4 resolution is never built. At inference the BatchNorm is folded in as well. The
parameters keep the paper's (and Hugging Face's) layout, so checkpoints load unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ParameterError, check_range
from .base import SegmentationModel
from .blocks.attention import token_linear
from .encoders.mit import MIT_CONFIGS, MixTransformer
from .catalog import register_model


class AllMLPDecoder(nn.Module):
    """SegFormer's all-MLP decoder up to (not including) the classifier.

    Maps the encoder's maps ``[B x C_i x H_i x W_i]`` (the first at stride 4) to ``B x dim x H_1 x W_1``.
    """

    def __init__(self, in_channels: list[int], dim: int = 256):
        super().__init__()
        self.linear_c = nn.ModuleList(nn.Linear(c, dim) for c in in_channels)
        # Concatenation order is deepest stage first, as in the reference implementation.
        self.linear_fuse = nn.Conv2d(dim * len(in_channels), dim, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(dim)
        self.act = nn.ReLU(inplace=True)
        self.dim = dim

    def _folded(self) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Per-stage ``dim x C_i`` matrices ``F_i P_i`` and the summed bias (BatchNorm folded in at eval)."""
        n, dim = len(self.linear_c), self.dim
        fuse = self.linear_fuse.weight.view(dim, n, dim)
        weights, bias = [], None
        for i, lin in enumerate(self.linear_c):
            f = fuse[:, n - 1 - i]
            weights.append(f @ lin.weight)
            b = f @ lin.bias
            bias = b if bias is None else bias + b
        if not self.training:
            bn = self.bn
            scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
            weights = [w * scale[:, None] for w in weights]
            bias = (bias - bn.running_mean) * scale + bn.bias
        return weights, bias

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        weights, bias = self._folded()
        size = feats[0].shape[-2:]
        out = None
        for i, (f, w) in enumerate(zip(feats, weights)):
            # Project channels-last: NCHW view -> NHWC -> linear -> NCHW view of channels-last memory.
            y = token_linear(f.permute(0, 2, 3, 1), w, bias if i == 0 else None).permute(0, 3, 1, 2)
            if i > 0:  # deeper stages are smaller (no shape test: keeps exported graphs size-agnostic)
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            out = y if out is None else out.add_(y)
        if self.training:
            out = self.bn(out)
        return self.act(out)


class SegFormerHead(nn.Sequential):
    """Dropout and the ``dim -> num_classes`` per-pixel classifier."""

    def __init__(self, dim: int, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Conv2d(dim, num_classes, kernel_size=1)


def build_segformer(num_classes: int, *, in_channels: int = 3, mit_config: dict, decoder_dim: int = 256,
                    dropout: float = 0.1, drop_path_rate: float = 0.1) -> SegmentationModel:
    """SegFormer from an explicit Mix Transformer configuration (keyword arguments of
    :class:`~seglab.models.encoders.mit.MixTransformer`); used for non-standard sizes and by
    :func:`seglab.models.hf.model_from_hf`."""
    check_range("decoder_dim", decoder_dim, 1)
    check_range("dropout", dropout, 0.0, 1.0, high_inclusive=False)
    check_range("drop_path_rate", drop_path_rate, 0.0, 1.0, high_inclusive=False)
    encoder = MixTransformer(in_channels, drop_path_rate=drop_path_rate, **mit_config)
    decoder = AllMLPDecoder(encoder.out_channels, decoder_dim)
    head = SegFormerHead(decoder_dim, num_classes, dropout)
    return SegmentationModel(encoder, decoder, head, stride=encoder.reductions[-1])


@register_model("segformer", family="SegFormer",
                description="Mix Transformer encoder (MiT-B0..B5) + all-MLP decoder; logits at 1/4, upsampled",
                reference="Xie et al., SegFormer, NeurIPS 2021", default_encoder="mit_b0")
def segformer(num_classes: int, *, encoder: str | None = None, in_channels: int = 3,
              decoder_dim: int | None = None, dropout: float = 0.1, drop_path_rate: float = 0.1):
    """SegFormer-B0 .. B5 (``encoder="mit_b0"`` .. ``"mit_b5"``, or ``"b0"`` .. ``"b5"``).

    ``decoder_dim`` defaults to the paper's 256 (B0, B1) or 768 (B2 .. B5).
    """
    name = encoder or "mit_b0"
    if not name.startswith("mit_"):
        name = f"mit_{name}"
    if name not in MIT_CONFIGS:
        raise ParameterError(f"unknown SegFormer encoder {encoder!r}; choose from: {', '.join(MIT_CONFIGS)}")
    cfg = dict(MIT_CONFIGS[name])
    default_dim = cfg.pop("decoder_dim")
    dim = default_dim if decoder_dim is None else decoder_dim
    return build_segformer(num_classes, in_channels=in_channels, mit_config=cfg, decoder_dim=dim,
                           dropout=dropout, drop_path_rate=drop_path_rate)
