"""Anchor boxes over the levels of a feature pyramid (Ren et al., "Faster R-CNN", NeurIPS 2015;
Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017).

Level ``l`` has one size per entry of ``sizes[l]`` and one box per aspect ratio (height / width) at every
feature cell; a box of size ``s`` and ratio ``r`` has width ``s / sqrt(r)`` and height ``s * sqrt(r)``
(rounded to whole pixels), centred on the cell's top-left corner ``(x * stride, y * stride)`` as in
torchvision, so its checkpoints keep their meaning. Anchors are ordered cell by cell, then box by box.
"""
from __future__ import annotations

import torch
from torch import nn

from ...errors import ParameterError

DEFAULT_SIZES = ((32,), (64,), (128,), (256,), (512,))
DEFAULT_RATIOS = ((0.5, 1.0, 2.0),) * 5


class AnchorGenerator(nn.Module):
    """Anchors for a list of feature maps, one entry of ``sizes`` / ``aspect_ratios`` per map."""

    def __init__(self, sizes=DEFAULT_SIZES, aspect_ratios=DEFAULT_RATIOS):
        super().__init__()
        if len(sizes) != len(aspect_ratios):
            raise ParameterError(f"anchor 'sizes' has {len(sizes)} levels, 'aspect_ratios' {len(aspect_ratios)}")
        self.sizes = tuple(tuple(s) for s in sizes)
        self.aspect_ratios = tuple(tuple(r) for r in aspect_ratios)
        self.cell_anchors = [self._cell(s, r) for s, r in zip(self.sizes, self.aspect_ratios)]

    @staticmethod
    def _cell(sizes, ratios) -> torch.Tensor:
        s = torch.as_tensor(sizes, dtype=torch.float32)
        r = torch.as_tensor(ratios, dtype=torch.float32)
        h = torch.sqrt(r)
        ws = (1 / h[:, None] * s[None, :]).reshape(-1)
        hs = (h[:, None] * s[None, :]).reshape(-1)
        return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()

    def num_anchors_per_location(self) -> list[int]:
        return [len(s) * len(r) for s, r in zip(self.sizes, self.aspect_ratios)]

    def grid_anchors(self, feature_sizes, strides, device) -> list[torch.Tensor]:
        """Per level: ``(H_l * W_l * A_l) x 4`` anchors in input-image pixels."""
        if len(feature_sizes) != len(self.cell_anchors):
            raise ParameterError(f"anchor generator has {len(self.cell_anchors)} levels, the backbone gives "
                                 f"{len(feature_sizes)} feature maps")
        out = []
        for (fh, fw), (sh, sw), base in zip(feature_sizes, strides, self.cell_anchors):
            ys = torch.arange(fh, dtype=torch.float32, device=device) * sh
            xs = torch.arange(fw, dtype=torch.float32, device=device) * sw
            y, x = torch.meshgrid(ys, xs, indexing="ij")
            shifts = torch.stack([x, y, x, y], dim=-1).reshape(-1, 1, 4)
            out.append((shifts + base.to(device)[None]).reshape(-1, 4))
        return out

    def forward(self, image_size: tuple[int, int], feature_maps: list[torch.Tensor]) -> list[torch.Tensor]:
        """Anchors of every level for a (padded) batch of ``image_size = (H, W)``."""
        sizes = [tuple(f.shape[-2:]) for f in feature_maps]
        strides = [(image_size[0] // h, image_size[1] // w) for h, w in sizes]
        return self.grid_anchors(sizes, strides, feature_maps[0].device)
