"""What every encoder offers the decoders and the weight loader.

An encoder maps ``N x C x H x W`` to a list of feature maps, shallow to deep, with ``out_channels[i]``
channels at ``1 / reductions[i]`` of the input size. Its parameter names equal those of the torchvision
classifier it comes from, so torchvision checkpoints load by name; ``head_prefixes`` names the classifier
parameters a segmentation encoder may leave out, and ``first_conv_key`` the convolution adapted when the
input has other than 3 channels.
"""
from __future__ import annotations

import torch


class EncoderMixin:
    out_channels: tuple[int, ...]
    reductions: tuple[int, ...]
    in_channels: int = 3
    output_stride: int = 32
    first_conv_key: str = ""
    head_prefixes: tuple[str, ...] = ()
    #: submodules (names inside the encoder) that fast bfloat16 inference keeps in float32
    #: (:func:`seglab.engine.fast.float32_ends`)
    float32_modules: tuple[str, ...] = ()


def adapt_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Adapt a first-layer kernel ``O x C x k x k`` trained on ``C`` channels to ``in_channels`` inputs.

    One channel: sum over the input channels (a gray image then gets the response the original kernel gives
    to R = G = B = gray). More channels: repeat the kernels cyclically and scale by ``C / in_channels``,
    which keeps the kernel's overall magnitude (for a multiple of ``C``, an image made of copies of the
    original channels gets the original response). This is the rule of segmentation_models_pytorch
    (``patch_first_conv``).
    """
    c = weight.shape[1]
    if in_channels == c:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    idx = torch.arange(in_channels) % c
    return weight[:, idx] * (c / in_channels)
