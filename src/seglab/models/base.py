"""The one model skeleton every network shares: ``encoder -> decoder -> head``.

:class:`SegmentationModel` makes every network accept any input size: it pads the input up to a size the
network accepts (a multiple of its stride; for valid-convolution networks also the border the
convolutions eat), runs the three parts, upsamples the logits to the padded input's resolution and crops
the padding away, so ``model(x).shape[-2:] == x.shape[-2:]`` always holds.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SeglabError


def mirror_pad(x: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """Reflect-pad ``x`` by ``(left, right, top, bottom)``, repeating the reflection for pads larger than
    the image (``F.pad(mode="reflect")`` alone requires ``pad < size``). This is U-Net's overlap-tile
    border extension (Ronneberger et al., MICCAI 2015, Fig. 2)."""
    left, right, top, bottom = pad
    while left or right or top or bottom:
        h, w = x.shape[-2:]
        step = (min(left, w - 1), min(right, w - 1), min(top, h - 1), min(bottom, h - 1))
        if w == 1 or h == 1:  # nothing to reflect: fall back to edge replication
            return F.pad(x, (left, right, top, bottom), mode="replicate")
        x = F.pad(x, step, mode="reflect")
        left, right, top, bottom = (a - b for a, b in zip((left, right, top, bottom), step))
    return x


class SegmentationModel(nn.Module):
    """``encoder -> decoder -> head`` with input padding and output cropping handled here.

    Parameters
    ----------
    encoder : maps the image ``N x C x H x W`` to a list of feature maps (or any object the decoder takes).
    decoder : maps the encoder's output to one feature map.
    head : maps the decoder's feature map to ``N x num_classes x h x w`` logits (``h x w`` may be a fraction
        of the input; the logits are upsampled bilinearly).
    stride : the padded input's height and width must be multiples of this.
    margin : pixels lost on each side by valid (unpadded) convolutions; the logits then cover the padded
        input minus ``margin`` on each side.
    pad_mode : ``"constant"`` (zeros) or ``"reflect"`` (mirror, U-Net's overlap-tile).
    """

    #: submodules that fast bfloat16 inference keeps in float32 (:func:`seglab.engine.fast.float32_ends`):
    #: the layer that writes the class scores, so the scores and their upsampling are not rounded to bfloat16
    float32_modules: tuple[str, ...] = ("head",)

    def __init__(self, encoder: nn.Module, decoder: nn.Module, head: nn.Module, *, stride: int,
                 margin: int = 0, pad_mode: str = "constant"):
        super().__init__()
        if pad_mode not in ("constant", "reflect"):
            raise ValueError(f"pad_mode must be 'constant' or 'reflect', got {pad_mode!r}")
        self.encoder = encoder
        self.decoder = decoder
        self.head = head
        self.stride = int(stride)
        self.margin = int(margin)
        self.pad_mode = pad_mode

    def padded_size(self, n: int) -> int:
        """Smallest network input size >= ``n + 2 * margin`` the network accepts (override for networks
        with stricter rules, such as the valid-convolution U-Net)."""
        return -(-(n + 2 * self.margin) // self.stride) * self.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise SeglabError(f"model input must be N x C x H x W, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        ph, pw = self.padded_size(h), self.padded_size(w)
        m = self.margin
        pad = (m, pw - w - m, m, ph - h - m)
        if any(pad):
            x = mirror_pad(x, pad) if self.pad_mode == "reflect" else F.pad(x, pad)
        logits = self.head(self.decoder(self.encoder(x)))
        out_h, out_w = ph - 2 * m, pw - 2 * m
        if logits.shape[-2:] != (out_h, out_w):
            logits = F.interpolate(logits, size=(out_h, out_w), mode="bilinear", align_corners=False)
        return logits[..., :h, :w]
