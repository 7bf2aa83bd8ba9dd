"""Inference on images of any size: sliding-window tiling with smooth blending, and test-time augmentation.

Tiles of the training size overlap by ``overlap``; each tile's class probabilities are weighted by a
window that is largest in the centre and small at the edges (Gaussian with sigma = tile / 8, as in
nnU-Net, Isensee et al. 2021, or a raised cosine / Hann window), so tile seams do not show. TTA averages
the probabilities over horizontal flips, 90-degree rotations and input scales.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ParameterError

WINDOWS = ("gaussian", "cosine", "uniform")


def window(h: int, w: int, kind: str = "gaussian") -> torch.Tensor:
    """Blending weights of an ``h x w`` tile, peak 1, strictly positive."""
    if kind not in WINDOWS:
        raise ParameterError(f"parameter 'window' must be one of {list(WINDOWS)}, got {kind!r}")

    def one(n):
        x = torch.arange(n, dtype=torch.float32) + 0.5
        if kind == "gaussian":
            s = n / 8.0
            return torch.exp(-0.5 * ((x - n / 2) / s) ** 2)
        if kind == "cosine":
            return torch.sin(math.pi * x / n) ** 2
        return torch.ones(n)

    wgt = one(h)[:, None] * one(w)[None, :]
    return wgt.clamp_min(1e-3)


def _starts(n: int, tile: int, stride: int) -> list[int]:
    if n <= tile:
        return [0]
    s = list(range(0, n - tile, stride)) + [n - tile]
    return sorted(set(s))


@torch.no_grad()
def sliding_window(model, x: torch.Tensor, tile, overlap: float = 0.5, kind: str = "gaussian",
                   batch: int = 4) -> torch.Tensor:
    """Softmax probabilities ``N x C x H x W`` of ``model`` over ``x`` computed tile by tile."""
    if not 0.0 <= overlap < 1.0:
        raise ParameterError(f"parameter 'overlap' must be in [0, 1), got {overlap}")
    n, _, h, w = x.shape
    th, tw = (int(tile), int(tile)) if isinstance(tile, (int, float)) else (int(tile[0]), int(tile[1]))
    th, tw = min(th, h), min(tw, w)
    if (th, tw) == (h, w):
        return torch.softmax(model(x).float(), dim=1)
    sh, sw = max(1, int(round(th * (1 - overlap)))), max(1, int(round(tw * (1 - overlap))))
    wgt = window(th, tw, kind).to(x.device)
    out, norm = None, torch.zeros((1, 1, h, w), device=x.device)
    boxes = [(y, xx) for y in _starts(h, th, sh) for xx in _starts(w, tw, sw)]
    for k in range(0, len(boxes), batch):
        chunk = boxes[k:k + batch]
        tiles = torch.cat([x[:, :, y:y + th, xx:xx + tw] for y, xx in chunk])
        prob = torch.softmax(model(tiles).float(), dim=1)
        if out is None:
            out = torch.zeros((n, prob.shape[1], h, w), device=x.device)
        for j, (y, xx) in enumerate(chunk):
            out[:, :, y:y + th, xx:xx + tw] += prob[j * n:(j + 1) * n] * wgt
            norm[:, :, y:y + th, xx:xx + tw] += wgt
    return out / norm


@torch.no_grad()
def predict_proba(model, x: torch.Tensor, *, tile=None, overlap: float = 0.5, window_kind: str = "gaussian",
                  flip: bool = False, scales=(1.0,), rotate: bool = False) -> torch.Tensor:
    """Class probabilities ``N x C x H x W`` with optional tiling and flip / rotation / multi-scale TTA.

    ``flip`` adds the horizontal mirror; ``rotate`` the three other 90-degree rotations (with ``flip``:
    the 8 symmetries of the square, for models trained with flips and 90-degree rotations). The mean is
    taken over every (scale, rotation, flip); each output is mapped back before averaging."""
    h, w = x.shape[-2:]
    total, count = None, 0
    for s in scales or (1.0,):
        s = float(s)
        if s <= 0:
            raise ParameterError(f"TTA scales must be > 0, got {s}")
        xs = x if s == 1.0 else F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
        variants = [(k, fl) for fl in ([False, True] if flip else [False]) for k in (range(4) if rotate else [0])]
        for k, fl in variants:
            inp = torch.flip(xs, dims=[-1]) if fl else xs
            inp = torch.rot90(inp, k, dims=(-2, -1)) if k else inp
            p = sliding_window(model, inp, tile, overlap, window_kind) if tile else torch.softmax(model(inp).float(), 1)
            p = torch.rot90(p, -k, dims=(-2, -1)) if k else p
            if fl:
                p = torch.flip(p, dims=[-1])
            if p.shape[-2:] != (h, w):
                p = F.interpolate(p, size=(h, w), mode="bilinear", align_corners=False)
            total = p if total is None else total + p
            count += 1
    return total / count


def normalise(image: np.ndarray, mean, std) -> torch.Tensor:
    """uint8 H x W x C -> float 1 x C x H x W, as the training pipeline does."""
    x = (image.astype(np.float32) / 255.0 - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]
