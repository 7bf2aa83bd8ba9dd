"""Box regression targets: the (dx, dy, dw, dh) parametrisation of R-CNN (Girshick et al., CVPR 2014).

For a reference box with centre ``(x_a, y_a)`` and size ``(w_a, h_a)`` and a target box ``(x, y, w, h)``:
``dx = w_x (x - x_a) / w_a``, ``dy = w_y (y - y_a) / h_a``, ``dw = w_w log(w / w_a)``,
``dh = w_h log(h / h_a)`` with the weights ``(w_x, w_y, w_w, w_h)``; decoding inverts it and clamps
``dw, dh`` to ``log(1000 / 16)`` so that ``exp`` cannot overflow. Both compute in float32 (or float64) with
autocast off, whatever the dtype of the inputs (:mod:`seglab.ops.precision`): under bfloat16 mixed precision
``log`` / ``exp`` of size ratios and box corners in 8-bit mantissas would move boxes by pixels.
"""
from __future__ import annotations

import math

import torch

from ...ops.precision import float32_region, widen

BBOX_XFORM_CLIP = math.log(1000.0 / 16)


class BoxCoder:
    def __init__(self, weights=(1.0, 1.0, 1.0, 1.0), bbox_xform_clip: float = BBOX_XFORM_CLIP):
        self.weights = tuple(float(w) for w in weights)
        self.bbox_xform_clip = bbox_xform_clip

    def encode(self, boxes: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """``N x 4`` deltas that turn the ``reference`` boxes into ``boxes`` (both ``N x 4`` xyxy)."""
        with float32_region(boxes.device):
            return self._encode(widen(boxes), widen(reference))

    def _encode(self, boxes: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        wx, wy, ww, wh = self.weights
        rw, rh = reference[:, 2] - reference[:, 0], reference[:, 3] - reference[:, 1]
        rx, ry = reference[:, 0] + 0.5 * rw, reference[:, 1] + 0.5 * rh
        gw, gh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        gx, gy = boxes[:, 0] + 0.5 * gw, boxes[:, 1] + 0.5 * gh
        return torch.stack([wx * (gx - rx) / rw, wy * (gy - ry) / rh,
                            ww * torch.log(gw / rw), wh * torch.log(gh / rh)], dim=1)

    def decode(self, deltas: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Boxes from ``N x 4k`` deltas (k boxes per reference, e.g. one per class): ``N x k x 4``."""
        with float32_region(deltas.device):
            return self._decode(widen(deltas), widen(reference))

    def _decode(self, deltas: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        deltas = deltas.reshape(deltas.shape[0], deltas.shape[-1] // 4, 4)
        wx, wy, ww, wh = self.weights
        rw = (reference[:, 2] - reference[:, 0])[:, None]
        rh = (reference[:, 3] - reference[:, 1])[:, None]
        rx, ry = reference[:, 0, None] + 0.5 * rw, reference[:, 1, None] + 0.5 * rh
        dx, dy = deltas[..., 0] / wx, deltas[..., 1] / wy
        dw = (deltas[..., 2] / ww).clamp(max=self.bbox_xform_clip)
        dh = (deltas[..., 3] / wh).clamp(max=self.bbox_xform_clip)
        cx, cy = dx * rw + rx, dy * rh + ry
        w, h = torch.exp(dw) * rw, torch.exp(dh) * rh
        return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)
