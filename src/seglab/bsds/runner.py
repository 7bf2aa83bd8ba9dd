"""Run a registered segmentation method over a BSDS500 split and score it, optionally sweeping one parameter.

A sweep over a method's scale parameter turns a flat method into a family of segmentations per image,
which the benchmark treats like the thresholds of a hierarchy: ODS picks the one parameter value best for
the whole split, OIS the best value per image (Arbelaez et al., PAMI 2011, §3.2).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from ..errors import ParameterError, SeglabError
from .evaluate import ImageResult, collect, evaluate_image, map_images
from .inputs import bsds_root, from_segmentations, read_ground_truth, split_ids


@dataclasses.dataclass
class Sweep:
    """One parameter and the values it takes, in increasing order of segment size where possible."""

    param: str
    values: list


def default_sweep_values(method, param: str, n: int = 7, factor: float = 8.0) -> list:
    """A grid of about ``n`` values around the parameter's default, clipped to its range.

    Small integers (default <= 10, e.g. a number of classes) step by one around the default (several
    methods grow exponentially with them); other numbers follow a geometric grid from default / ``factor``
    to default x ``factor`` (integers rounded, duplicates dropped). Used when ``--sweep PARAM`` gives no
    values.
    """
    p = method.param(param)
    if p.type not in (int, float):
        raise ParameterError(f"parameter {param!r} of {method.name!r} is not numeric; give --sweep {param}=v1,v2,...")
    default = p.default if p.default not in (None, 0) else (p.high if p.high not in (None, 0) else 1.0)
    if p.type is int and abs(default) <= 10:
        vals = np.arange(default - (n - 1) // 2, default + n // 2 + 1, dtype=float)
    else:
        vals = float(default) * np.geomspace(1 / factor, factor, n)
    if p.low is not None:
        vals = np.maximum(vals, p.low)
    if p.high is not None:
        vals = np.minimum(vals, p.high)
    if p.type is int:
        vals = np.round(vals)
        if p.low is None:
            vals = np.maximum(vals, 1)
        return sorted({int(v) for v in vals})
    return sorted({float(f"{v:.6g}") for v in vals})


def usable_values(method, param: str, values: list, params: dict | None = None) -> list:
    """The values the method accepts, tried on a tiny synthetic image (constraints such as "odd" live in
    the methods, not in the registry); a rejected integer is replaced by the next integer when that works."""
    from ..classical.registry import segment

    rng = np.random.default_rng(0)
    img = rng.random((24, 32, 3)).astype(np.float32)
    out = []
    for v in values:
        for cand in ([v, v + 1] if isinstance(v, int) else [v]):
            try:
                segment(img, method.name, **{**(params or {}), param: cand})
            except SeglabError:
                continue
            if cand not in out:
                out.append(cand)
            break
    return out


def parse_sweep(method, text: str | None) -> Sweep | None:
    """``PARAM=v1,v2,...``, ``PARAM`` (default grid) or ``auto`` (the method's ``scale_param``)."""
    if text is None:
        return None
    text = text.strip()
    if text == "auto":
        if method.scale_param is None:
            raise ParameterError(f"method {method.name!r} has no scale parameter; use --sweep PARAM=v1,v2,...")
        text = method.scale_param
    if "=" not in text:
        values = usable_values(method, text, default_sweep_values(method, text))
        if not values:
            raise ParameterError(f"no usable default sweep for {method.name!r} parameter {text!r}; give values")
        return Sweep(text, values)
    name, vals = text.split("=", 1)
    p = method.param(name.strip())
    values = [p.check(p.parse(v)) for v in vals.split(",") if v.strip()]
    if not values:
        raise ParameterError(f"--sweep {text!r}: no values")
    return Sweep(p.name, values)


def _thresholds(sweep: Sweep | None) -> np.ndarray | None:
    if sweep is None:
        return None
    try:
        thr = np.asarray(sweep.values, dtype=float)
    except (TypeError, ValueError):
        return None
    return thr if np.all(np.diff(thr) > 0) else None


def _segment_job(args):
    from ..classical.registry import segment
    from ..io import read_image

    image_id, image_path, gt_path, method, params, sweep, region, boundary = args
    image = read_image(image_path)
    segs, secs = [], []
    values = sweep.values if sweep else [None]
    for v in values:
        kw = dict(params)
        if sweep:
            kw[sweep.param] = v
        t0 = time.perf_counter()
        labels = segment(image, method, **kw)
        secs.append(time.perf_counter() - t0)
        segs.append(labels)
    pred = from_segmentations(segs, _thresholds(sweep))
    gt = read_ground_truth(gt_path)
    res = evaluate_image(pred, gt, region=region, boundary=boundary, name=image_id)
    return res, secs


def run_method(method: str, params: dict | None = None, *, sweep: Sweep | None = None, split: str = "test",
               limit: int | None = None, ids: list[str] | None = None, root: Path | None = None,
               workers: int = 1, region: bool = True, boundary: bool = True, progress=None):
    """Segment every image of ``split`` with ``method`` (at each sweep value) and score it.

    Returns ``(results, summary, seconds)``: per-image :class:`ImageResult`, the :func:`collect` summary,
    and per image the list of seconds per segmentation (one per sweep value).
    """
    from ..classical.registry import get_method, resolve_params

    m = get_method(method)
    params = dict(params or {})
    resolve_params(m, params)  # validate before starting the pool
    if sweep is not None:
        if sweep.param in params:
            raise ParameterError(f"parameter {sweep.param!r} is both set and swept")
        for v in sweep.values:
            m.param(sweep.param).check(v)
    root = bsds_root(root)
    if ids is None:
        ids = split_ids(split, root)
    if limit is not None:
        if limit < 1:
            raise ParameterError(f"parameter 'limit' must be >= 1, got {limit}")
        ids = ids[:limit]
    jobs = []
    for i in ids:
        img = root / "images" / split / f"{i}.jpg"
        if not img.is_file():
            raise SeglabError(f"{img}: no such file")
        jobs.append((i, img, root / "groundTruth" / split / f"{i}.mat", method, params, sweep, region, boundary))
    out = list(map_images(_segment_job, jobs, workers=workers, progress=progress))
    results: list[ImageResult] = [r for r, _ in out]
    seconds = [s for _, s in out]
    summary = collect(results)
    summary["method"] = method
    summary["params"] = {k: v for k, v in params.items() if not isinstance(v, np.ndarray)}
    summary["sweep"] = {"param": sweep.param, "values": list(sweep.values)} if sweep else None
    summary["split"] = split
    all_secs = [s for ss in seconds for s in ss]
    summary["median_seconds_per_segmentation"] = float(np.median(all_secs)) if all_secs else None
    return results, summary, seconds
