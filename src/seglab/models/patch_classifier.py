"""The sliding-window baseline: a CNN that classifies the centre pixel of a ``window x window`` patch.

Before fully convolutional networks, a segmentation was made by classifying every pixel from the patch
around it (Ciresan et al., "Deep Neural Networks Segment Neuronal Membranes in Electron Microscopy
Images", NIPS 2012): one network evaluation per pixel, with neighbouring patches recomputing almost the
same features. The same network can instead be run once over the whole image (Giusti et al., "Fast Image
Scanning with Deep Max-Pooling Convolutional Neural Networks", ICIP 2013): make every pooling stride 1
and dilate every later layer by the product of the strides removed before it; the output is then the
patch classifier's output at every pixel, identical, at a fraction of the cost. This is the observation
that made FCNs win.

The network: two [3x3 valid conv, ReLU, 3x3 max-pool stride 2] stages, a 3x3 "fully connected" conv,
ReLU and a 1x1 classifier, so the window is 21 x 21 pixels (margin 10 around the centre).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SeglabError, check_range
from .base import SegmentationModel
from .catalog import register_model

WINDOW = 21


def dilated_max3(x: torch.Tensor, d: int) -> torch.Tensor:
    """``F.max_pool2d(x, 3, stride=1, dilation=d)`` (no padding) as two separable maxima of shifted views:
    the same numbers, several times faster on the CPU than torch's dilated pooling kernel."""
    h, w = x.shape[-2:]
    x = torch.maximum(torch.maximum(x[..., : h - 2 * d, :], x[..., d: h - d, :]), x[..., 2 * d:, :])
    return torch.maximum(torch.maximum(x[..., : w - 2 * d], x[..., d: w - d]), x[..., 2 * d:])


class PatchNet(nn.Module):
    """The patch network, runnable per patch (:meth:`patches`) or densely (:meth:`forward`)."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 16, hidden: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3)
        self.conv2 = nn.Conv2d(width, 2 * width, 3)
        self.fc = nn.Conv2d(2 * width, hidden, 3)
        self.classifier = nn.Conv2d(hidden, num_classes, 1)

    def _run(self, x: torch.Tensor, dense: bool) -> torch.Tensor:
        # stride s of each pooling in patch mode; in dense mode stride 1 and dilation d of later layers
        d = 1
        x = F.relu(F.conv2d(x, self.conv1.weight, self.conv1.bias, dilation=d), inplace=True)
        x = dilated_max3(x, d) if dense else F.max_pool2d(x, 3, 2)
        d = 2 if dense else 1
        x = F.relu(F.conv2d(x, self.conv2.weight, self.conv2.bias, dilation=d), inplace=True)
        x = dilated_max3(x, d) if dense else F.max_pool2d(x, 3, 2)
        d = 4 if dense else 1
        x = F.relu(F.conv2d(x, self.fc.weight, self.fc.bias, dilation=d), inplace=True)
        return self.classifier(x)

    def patches(self, patches: torch.Tensor) -> torch.Tensor:
        """Class scores ``N x K`` of the centre pixels of ``N x C x 21 x 21`` patches."""
        if patches.shape[-2:] != (WINDOW, WINDOW):
            raise SeglabError(f"patches must be {WINDOW} x {WINDOW}, got {tuple(patches.shape[-2:])}")
        return self._run(patches, dense=False).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Dense evaluation: ``N x C x (H + 20) x (W + 20)`` -> ``N x K x H x W`` scores."""
        return self._run(x, dense=True)


class PatchClassifier(SegmentationModel):
    """Segmentation by centre-pixel classification; ``forward`` runs the dense evaluation, and
    :meth:`sliding_window` the per-patch one (same numbers, many times slower)."""

    float32_modules = ("encoder.classifier",)  # the 1 x 1 classifier (head and decoder are identities)

    def __init__(self, num_classes: int, *, in_channels: int = 3, width: int = 16, hidden: int = 64):
        super().__init__(PatchNet(in_channels, num_classes, width, hidden), nn.Identity(), nn.Identity(),
                         stride=1, margin=WINDOW // 2, pad_mode="reflect")

    def sliding_window(self, x: torch.Tensor, batch: int = 4096) -> torch.Tensor:
        """Classify the window around every pixel separately (the mirrored border as in ``forward``)."""
        from .base import mirror_pad

        n, c, h, w = x.shape
        m = self.margin
        xp = mirror_pad(x, (m, m, m, m))
        cols = F.unfold(xp, WINDOW)  # N x (C*21*21) x (H*W)
        patches = cols.transpose(1, 2).reshape(-1, c, WINDOW, WINDOW)
        scores = torch.cat([self.encoder.patches(patches[i:i + batch]) for i in range(0, len(patches), batch)])
        return scores.view(n, h, w, -1).permute(0, 3, 1, 2)


@register_model("patch_classifier", family="sliding window",
                description="centre-pixel CNN classifier on 21x21 windows, evaluated densely",
                reference="Ciresan et al., NIPS 2012; Giusti et al., ICIP 2013 (dense evaluation)")
def patch_classifier(num_classes: int, *, encoder: str | None = None, in_channels: int = 3, width: int = 16,
                     hidden: int = 64) -> PatchClassifier:
    """Patch classifier with ``width`` and ``2 * width`` convolution channels and a ``hidden``-unit layer."""
    if encoder is not None:
        raise SeglabError("parameter 'encoder': patch_classifier has its own fixed network")
    check_range("width", width, 1)
    check_range("hidden", hidden, 1)
    return PatchClassifier(num_classes, in_channels=in_channels, width=width, hidden=hidden)
