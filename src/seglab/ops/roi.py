"""RoIAlign and RoIPool: fixed-size features of boxes on a feature map (as ``torchvision.ops``).

RoIPool (Girshick, "Fast R-CNN", ICCV 2015) rounds the box to the feature grid, splits it into
``output_size`` bins with integer borders and takes the maximum of each bin. RoIAlign (He et al.,
"Mask R-CNN", ICCV 2017) keeps the box real-valued: each bin averages ``sampling_ratio`` x
``sampling_ratio`` bilinear samples at regularly spaced points (``ceil(box size / output size)`` per
axis when ``sampling_ratio <= 0``); ``aligned=True`` shifts the box by half a pixel so that pixel centres
sit at ``i + 0.5`` (Detectron2's correction). Samples more than one pixel outside the map are zero; the
others read the nearest border value, as torchvision's kernels do.

``boxes`` is a ``K x 5`` tensor ``(batch index, x1, y1, x2, y2)`` or a list of ``L_i x 4`` tensors, one
per image; coordinates are in input-image pixels and ``spatial_scale`` maps them to the feature map.

Mixed precision: box coordinates are never rounded to the feature map's dtype. For a bfloat16 / float16
``input`` (e.g. features under autocast) RoIAlign computes its sampling points and the bilinear samples in
float32 with autocast off and returns the input's dtype (as torchvision's autocast rule for its kernel);
RoIPool takes exact maxima in the input's dtype from float64 bin borders.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F

from ..errors import ParameterError
from .precision import compute_dtype, float32_region

def rois_from_boxes(boxes) -> torch.Tensor:
    """A ``K x 5`` tensor (batch index first) from a ``K x 5`` tensor or a list of ``L_i x 4`` tensors."""
    if isinstance(boxes, (list, tuple)):
        for i, b in enumerate(boxes):
            if not isinstance(b, torch.Tensor) or b.dim() != 2 or b.shape[1] != 4:
                shape = tuple(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__
                raise ParameterError(f"parameter 'boxes[{i}]' must be an L x 4 tensor, got {shape}")
        if not boxes:
            return torch.zeros(0, 5)
        idx = torch.cat([torch.full((len(b), 1), i, dtype=b.dtype, device=b.device) for i, b in enumerate(boxes)])
        return torch.cat([idx, torch.cat(list(boxes))], dim=1)
    if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape[1] != 5:
        shape = tuple(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
        raise ParameterError(f"parameter 'boxes' must be a K x 5 tensor or a list of L x 4 tensors, got {shape}")
    return boxes


def _pair(output_size) -> tuple[int, int]:
    size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    if len(size) != 2 or any(int(s) < 1 for s in size):
        raise ParameterError(f"parameter 'output_size' must be a positive int or (height, width), got {output_size}")
    return int(size[0]), int(size[1])


def _check_input(input: torch.Tensor, rois: torch.Tensor) -> None:
    if input.dim() != 4:
        raise ParameterError(f"parameter 'input' must be an N x C x H x W tensor, got shape {tuple(input.shape)}")
    if rois.numel() and (rois[:, 0].min() < 0 or rois[:, 0].max() >= input.shape[0]):
        raise ParameterError(f"box batch indices must lie in [0, {input.shape[0] - 1}]")


def roi_align(input: torch.Tensor, boxes, output_size, spatial_scale: float = 1.0, sampling_ratio: int = -1,
              aligned: bool = False) -> torch.Tensor:
    """``K x C x output_size`` bilinear RoI features of ``input`` (``N x C x H x W``); see the module doc.

    Differentiable with respect to ``input``. Implemented with :func:`torch.nn.functional.grid_sample`
    (border padding reproduces the clamping at the map's edges), one call per image and grid size.
    """
    rois = rois_from_boxes(boxes)
    _check_input(input, rois)
    ph, pw = _pair(output_size)
    n, c, h, w = input.shape
    out = input.new_zeros((rois.shape[0], c, ph, pw))
    if rois.shape[0] == 0:
        return out
    dtype = compute_dtype(input.dtype)
    with float32_region(input.device):
        _roi_align_into(out, input, rois.detach().to(dtype), ph, pw, spatial_scale, sampling_ratio, aligned)
    return out


def _roi_align_into(out, input, rois, ph, pw, spatial_scale, sampling_ratio, aligned) -> None:
    """Fills ``out`` (``K x C x ph x pw``) with the RoIAlign features of ``rois`` (in the compute dtype)."""
    n, c, h, w = input.shape
    offset = 0.5 if aligned else 0.0
    x1 = rois[:, 1] * spatial_scale - offset
    y1 = rois[:, 2] * spatial_scale - offset
    roi_w = rois[:, 3] * spatial_scale - offset - x1
    roi_h = rois[:, 4] * spatial_scale - offset - y1
    if not aligned:  # the legacy behaviour: boxes at least one feature pixel wide
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    if sampling_ratio > 0:
        grid_h = torch.full_like(roi_h, sampling_ratio, dtype=torch.int64)
        grid_w = grid_h.clone()
    else:
        # an empty (aligned) box has no sample and pools to 0, as in torchvision
        grid_h = torch.ceil(roi_h / ph).long().clamp(min=0)
        grid_w = torch.ceil(roi_w / pw).long().clamp(min=0)
    batch = rois[:, 0].long()
    key = (batch * (grid_h.max() + 1) + grid_h) * (grid_w.max() + 1) + grid_w
    key[(grid_h == 0) | (grid_w == 0)] = -1
    for k in torch.unique(key):
        if k < 0:
            continue
        sel = torch.nonzero(key == k).flatten()
        b, gh, gw = int(batch[sel[0]]), int(grid_h[sel[0]]), int(grid_w[sel[0]])
        ys = _sample_points(y1[sel], roi_h[sel], ph, gh)  # m x (ph * gh)
        xs = _sample_points(x1[sel], roi_w[sel], pw, gw)  # m x (pw * gw)
        m = sel.shape[0]
        gy = ys[:, :, None].expand(m, ph * gh, pw * gw)
        gx = xs[:, None, :].expand(m, ph * gh, pw * gw)
        # align_corners=True maps -1 / +1 to the centres of the first / last pixel: pixel i at 2i/(size-1) - 1
        grid = torch.stack((_normalise(gx, w), _normalise(gy, h)), dim=-1).reshape(1, m * ph * gh, pw * gw, 2)
        v = F.grid_sample(input[b:b + 1].to(rois.dtype), grid, mode="bilinear", padding_mode="border",
                          align_corners=True)
        inside_y = (ys >= -1.0) & (ys <= h)
        inside_x = (xs >= -1.0) & (xs <= w)
        if not (bool(inside_y.all()) and bool(inside_x.all())):  # samples beyond the map read 0
            inside = inside_y[:, :, None] & inside_x[:, None, :]
            v = v * inside.reshape(1, 1, m * ph * gh, pw * gw).to(v.dtype)
        # average the gh x gw samples of each bin
        v = F.avg_pool2d(v, (gh, gw)) if gh * gw > 1 else v
        out.index_copy_(0, sel, v.reshape(c, m, ph, pw).transpose(0, 1).to(out.dtype))


def _sample_points(start: torch.Tensor, size: torch.Tensor, bins: int, grid: int) -> torch.Tensor:
    """``m x (bins * grid)`` sample coordinates: ``grid`` evenly spaced points inside each bin."""
    bin_size = size / bins
    steps = (torch.arange(bins * grid, dtype=start.dtype, device=start.device) + 0.5) / grid
    # bin p, sample i: start + p * bin + (i + 0.5) * bin / grid == start + bin * (p * grid + i + 0.5) / grid
    return start[:, None] + bin_size[:, None] * steps[None, :]


def _normalise(coord: torch.Tensor, size: int) -> torch.Tensor:
    if size == 1:
        return torch.zeros_like(coord)
    return coord * (2.0 / (size - 1)) - 1.0


def roi_pool(input: torch.Tensor, boxes, output_size, spatial_scale: float = 1.0) -> torch.Tensor:
    """``K x C x output_size`` max-pooled RoI features of ``input`` with quantised bins (Fast R-CNN).

    The scaled box corners are rounded (half away from zero), the box spans ``end - start + 1`` pixels
    (at least 1) and bin ``p`` covers ``[floor(p * s), ceil((p + 1) * s))`` with ``s = span / bins``,
    clipped to the map; an empty bin gives 0. Gradients go to the maximum of each bin (split between
    equal maxima, where torchvision gives all to the first).
    """
    rois = rois_from_boxes(boxes)
    _check_input(input, rois)
    ph, pw = _pair(output_size)
    n, c, h, w = input.shape
    k = rois.shape[0]
    if k == 0:
        return input.new_zeros((0, c, ph, pw))
    r = rois.detach().double()

    def round_away(v):
        return torch.sign(v) * torch.floor(v.abs() + 0.5)

    x1, y1 = round_away(r[:, 1] * spatial_scale), round_away(r[:, 2] * spatial_scale)
    x2, y2 = round_away(r[:, 3] * spatial_scale), round_away(r[:, 4] * spatial_scale)
    hs, he = _bin_edges(y1, (y2 - y1 + 1).clamp(min=1), ph, h)  # k x ph each
    ws, we = _bin_edges(x1, (x2 - x1 + 1).clamp(min=1), pw, w)
    empty = (he <= hs)[:, :, None] | (we <= ws)[:, None, :]  # k x ph x pw
    # A bin of length L along an axis is covered by two windows of length 2^floor(log2 L) (at its start and
    # ending at its end), so its maximum is the largest of four look-ups in tables of window maxima
    # (a "sparse table"), whatever the bin's size.
    jy = torch.log2((he - hs).clamp(min=1).double()).floor().long()
    jx = torch.log2((we - ws).clamp(min=1).double()).floor().long()
    n_jy, n_jx = int(jy.max()) + 1, int(jx.max()) + 1
    ys = [hs.clamp(max=h - 1), (he - (1 << jy)).clamp(0, h - 1)]
    xs = [ws.clamp(max=w - 1), (we - (1 << jx)).clamp(0, w - 1)]
    batch = rois[:, 0].long()
    out = input.new_zeros((k, ph, pw, c))
    for b in torch.unique(batch):
        sel = torch.nonzero(batch == b).flatten()
        table = _window_max_tables(input[int(b)], n_jy, n_jx)  # (n_jy * n_jx * h * w) x c
        base = (jy[sel][:, :, None] * n_jx + jx[sel][:, None, :]) * (h * w)
        best = None
        for yy in ys:
            for xx in xs:
                idx = base + yy[sel][:, :, None] * w + xx[sel][:, None, :]
                v = table[idx.reshape(-1)].reshape(len(sel), ph, pw, c)
                best = v if best is None else torch.maximum(best, v)
        out.index_copy_(0, sel, best.masked_fill(empty[sel][..., None], 0.0))
    return out.permute(0, 3, 1, 2)


def _window_max_tables(fmap: torch.Tensor, n_jy: int, n_jx: int) -> torch.Tensor:
    """``(n_jy * n_jx * H * W) x C``: row ``((i * n_jx + j) * H + y) * W + x`` holds the maximum of
    ``fmap`` (``C x H x W``) over rows ``[y, y + 2^i)`` and columns ``[x, x + 2^j)`` (clipped to the map)."""
    def doubled(t, dim, step):
        pad_shape = list(t.shape)
        pad_shape[dim] = step
        shifted = torch.cat([t.narrow(dim, step, t.shape[dim] - step) if step < t.shape[dim] else t.narrow(dim, 0, 0),
                             t.new_full(pad_shape, float("-inf"))], dim).narrow(dim, 0, t.shape[dim])
        return torch.maximum(t, shifted)

    rows = [fmap]
    for i in range(1, n_jy):
        rows.append(doubled(rows[-1], 1, 1 << (i - 1)))
    tables = []
    for r in rows:
        cols = [r]
        for j in range(1, n_jx):
            cols.append(doubled(cols[-1], 2, 1 << (j - 1)))
        tables += cols
    c = fmap.shape[0]
    return torch.stack(tables).permute(0, 2, 3, 1).reshape(-1, c)


def _bin_edges(start: torch.Tensor, span: torch.Tensor, bins: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer ``[begin, end)`` of each bin along one axis, clipped to ``[0, size]`` (``k x bins`` each)."""
    p = torch.arange(bins, dtype=span.dtype, device=span.device)
    bin_size = span[:, None] / bins
    begin = torch.floor(p * bin_size) + start[:, None]
    end = torch.ceil((p + 1) * bin_size) + start[:, None]
    return begin.clamp(0, size).long(), end.clamp(0, size).long()
