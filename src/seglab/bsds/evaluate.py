"""Score predictions on BSDS500 and summarise them as the official benchmark does.

Per image and per threshold we keep the official counts (``evaluation_reg_image`` /
``evaluation_bdry_image``); :func:`collect` turns them into ODS (one threshold for the whole data set),
OIS (the best threshold per image), Best (each human region's best match over all thresholds) and AP,
exactly as the official ``collect_eval_reg`` / ``collect_eval_bdry`` do (Arbelaez et al., PAMI 2011).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..errors import InputFileError, SeglabError
from .boundary import MAX_DIST, GroundTruthBoundary, boundary_counts, seg2bdry
from .inputs import GroundTruth, Prediction, read_ground_truth, read_prediction, read_soft_boundary, thresholds
from .region import RegionGroundTruth, score_ucm

NTHRESH = 99


@dataclasses.dataclass
class ImageResult:
    """Official per-threshold counts of one image.

    ``region``: rows ``(cntR, sumR, cntP, sumP, RI, VI, nseg)`` (None for soft boundary maps);
    ``cnt_r_best``: the covering "best" count; ``boundary``: rows ``(cntR, sumR, cntP, sumP)``.
    """

    name: str
    thresholds: np.ndarray
    region: np.ndarray | None
    cnt_r_best: float
    boundary: np.ndarray | None


def _digest(b: np.ndarray) -> bytes:
    return hashlib.blake2b(np.packbits(b).tobytes(), digest_size=16).digest()


def evaluate_image(pred: Prediction, gt: GroundTruth, *, nthresh: int = NTHRESH, region: bool = True,
                   boundary: bool = True, max_dist: float = MAX_DIST, thin: bool = True,
                   name: str = "") -> ImageResult:
    """Region and boundary statistics of one prediction against its ground truth, at every threshold."""
    if pred.image_shape != gt.shape:
        raise SeglabError(f"{name or 'prediction'}: size {pred.image_shape} does not match its ground truth "
                          f"{gt.shape}")
    if pred.thresholds is not None:
        thr = np.asarray(pred.thresholds, dtype=float)
    elif pred.kind == "segs":
        thr = np.arange(1, len(pred.data) + 1, dtype=float)
    else:
        thr = thresholds(nthresh)
    reg = None
    best = 0.0
    if region and pred.kind != "soft":
        rgt = RegionGroundTruth(gt.segmentations)
        if pred.kind == "ucm":
            reg = score_ucm(pred.data, thr, rgt)
        else:
            reg = np.array([rgt.score(s) for s in pred.data], dtype=float)
        best = rgt.best_count()
    bdry = None
    if boundary:
        gts = [GroundTruthBoundary(b, max_dist) for b in gt.boundaries]
        bdry = np.zeros((len(thr), 4))
        if pred.kind == "segs":
            cache: dict[bytes, tuple] = {}
            for t, seg in enumerate(pred.data):
                bmap = seg2bdry(seg)
                key = _digest(bmap)
                if key not in cache:  # a sweep often gives the same segmentation twice
                    cache[key] = boundary_counts(bmap, gts, thin_map=thin)
                bdry[t] = cache[key]
        else:
            pb = pred.data[2::2, 2::2] if pred.kind == "ucm" else pred.data
            # pb >= t changes only where a value of pb lies in [previous t, t): count values below each t
            levels = np.unique(pb)
            below = np.searchsorted(levels, thr, side="left")
            for t in range(len(thr)):
                if t > 0 and below[t] == below[t - 1]:
                    bdry[t] = bdry[t - 1]
                else:
                    bdry[t] = boundary_counts(pb >= thr[t], gts, thin_map=thin)
    return ImageResult(name, thr, reg, best, bdry)


# ----------------------------------------------------------------------------------------------------
# summaries (official collect_eval_reg / collect_eval_bdry)
# ----------------------------------------------------------------------------------------------------
def _ratio(c, s):
    c = np.asarray(c, dtype=float)
    s = np.asarray(s, dtype=float)
    return c / (s + (s == 0))


def fmeasure(r, p):
    r = np.asarray(r, dtype=float)
    p = np.asarray(p, dtype=float)
    return 2 * p * r / (p + r + ((p + r) == 0))


def _max_f(thr, r, p):
    """Official ``maxF``: best F along the PR curve, interpolating linearly between thresholds."""
    best = (thr[0], r[0], p[0], float(fmeasure(r[0], p[0])))
    d = np.linspace(0, 1, 100)
    for i in range(1, len(thr)):
        t = thr[i] * d + thr[i - 1] * (1 - d)
        rr = r[i] * d + r[i - 1] * (1 - d)
        pp = p[i] * d + p[i - 1] * (1 - d)
        f = fmeasure(rr, pp)
        k = int(np.argmax(f))
        if f[k] > best[3]:
            best = (t[k], rr[k], pp[k], float(f[k]))
    return tuple(float(x) for x in best)


def _average_precision(r, p):
    """Official AP: precision interpolated (linear) at recall 0, 0.01, ..., 1 over the unique recalls,
    zero outside their range, summed x 0.01."""
    ru, idx = np.unique(r, return_index=True)
    if ru.size <= 1:
        return 0.0
    pu = p[idx]
    grid = np.linspace(0, 1, 101)
    pi = np.interp(grid, ru, pu, left=np.nan, right=np.nan)
    return float(np.nansum(pi) * 0.01)


def collect_region(results: list[ImageResult]) -> dict:
    """Covering, PRI, VI: ODS / OIS (and Best for covering), per threshold and per image."""
    res = [r for r in results if r.region is not None]
    if not res:
        return {}
    thr = res[0].thresholds
    stack = np.stack([r.region for r in res])  # images x thresholds x 7
    cnt_r, sum_r, cnt_p, sum_p, ri, vi = (stack[..., k] for k in range(6))
    # covering
    cov_t = _ratio(cnt_r.sum(0), sum_r.sum(0))
    i_ods = int(np.argmax(cov_t))
    per_image = []
    c_best = s_best = 0.0
    for k in range(len(res)):
        rk = _ratio(cnt_r[k], sum_r[k])
        pk = _ratio(cnt_p[k], sum_p[k])
        first = int(np.argmax(rk))
        last = len(rk) - 1 - int(np.argmax(rk[::-1]))  # official uses the last maximum for OIS
        c_best += cnt_r[k, last]
        s_best += sum_r[k, last]
        per_image.append({"image": res[k].name, "threshold": float(thr[first]), "covering": float(rk[first]),
                          "covering_precision": float(pk[first])})
    best_total = sum(r.cnt_r_best for r in res) / sum_r[:, 0].sum() if sum_r[:, 0].sum() else 0.0
    # PRI, VI: mean over images
    ri_t = ri.mean(0)
    vi_t = vi.mean(0)
    i_ri = int(np.argmax(ri_t))
    i_vi = int(np.argmin(vi_t))
    for k in range(len(res)):
        per_image[k].update({"pri_ois": float(ri[k].max()), "vi_ois": float(vi[k].min())})
    return {
        "covering": {"ods": float(cov_t[i_ods]), "ods_threshold": float(thr[i_ods]),
                     "ois": float(c_best / s_best) if s_best else 0.0, "best": float(best_total)},
        "pri": {"ods": float(ri_t[i_ri]), "ods_threshold": float(thr[i_ri]), "ois": float(ri.max(1).mean())},
        "vi": {"ods": float(vi_t[i_vi]), "ods_threshold": float(thr[i_vi]), "ois": float(vi.min(1).mean())},
        "per_threshold": [{"threshold": float(t), "covering": float(c), "pri": float(a), "vi": float(b)}
                          for t, c, a, b in zip(thr, cov_t, ri_t, vi_t)],
        "per_image": per_image,
    }


def collect_boundary(results: list[ImageResult]) -> dict:
    """Boundary precision / recall / F: ODS, OIS and AP, per threshold and per image."""
    res = [r for r in results if r.boundary is not None]
    if not res:
        return {}
    thr = res[0].thresholds
    stack = np.stack([r.boundary for r in res])
    cnt_r, sum_r, cnt_p, sum_p = (stack[..., k] for k in range(4))
    per_image = []
    tot = np.zeros(4)
    for k in range(len(res)):
        rk = _ratio(cnt_r[k], sum_r[k])
        pk = _ratio(cnt_p[k], sum_p[k])
        fk = fmeasure(rk, pk)
        bt, br, bp, bf = _max_f(thr, rk, pk)
        per_image.append({"image": res[k].name, "threshold": bt, "recall": br, "precision": bp, "f": bf})
        last = len(fk) - 1 - int(np.argmax(fk[::-1]))
        tot += stack[k, last]
    r = _ratio(cnt_r.sum(0), sum_r.sum(0))
    p = _ratio(cnt_p.sum(0), sum_p.sum(0))
    f = fmeasure(r, p)
    bt, br, bp, bf = _max_f(thr, r, p)
    r_max = float(_ratio(tot[0], tot[1]))
    p_max = float(_ratio(tot[2], tot[3]))
    return {
        "ods": {"threshold": bt, "recall": br, "precision": bp, "f": bf},
        "ois": {"recall": r_max, "precision": p_max, "f": float(fmeasure(r_max, p_max))},
        "ap": _average_precision(r, p),
        "per_threshold": [{"threshold": float(t), "recall": float(a), "precision": float(b), "f": float(c)}
                          for t, a, b, c in zip(thr, r, p, f)],
        "per_image": per_image,
    }


def collect(results: list[ImageResult]) -> dict:
    """Both summaries; ``"region"`` / ``"boundary"`` are empty dicts where nothing was scored."""
    return {"images": len(results), "region": collect_region(results), "boundary": collect_boundary(results)}


# ----------------------------------------------------------------------------------------------------
# folders
# ----------------------------------------------------------------------------------------------------
def find_predictions(pred_dir: Path, ids: Iterable[str]) -> dict[str, Path]:
    """Map each image id to its result file in ``pred_dir`` (``ID.mat``, ``ID.png`` or ``ID.npy``)."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise InputFileError(f"{pred_dir}: no such folder")
    out = {}
    for i in ids:
        for suffix in (".mat", ".png", ".npy"):
            p = pred_dir / f"{i}{suffix}"
            if p.is_file():
                out[i] = p
                break
    return out


def _eval_file(args):
    pid, pred_path, gt_path, kind, nthresh, region, boundary = args
    gt = read_ground_truth(gt_path)
    pred = read_soft_boundary(pred_path) if kind == "soft" else read_prediction(pred_path)
    return evaluate_image(pred, gt, nthresh=nthresh, region=region, boundary=boundary, name=pid)


def evaluate_folder(pred_dir, gt_dir, *, ids: list[str] | None = None, nthresh: int = NTHRESH,
                    region: bool = True, boundary: bool = True, soft: bool = False, workers: int = 1,
                    progress: Callable[[int, int], None] | None = None, allow_missing: bool = False):
    """Score every result in ``pred_dir`` against ``gt_dir`` (ground-truth ``ID.mat`` files).

    ``soft``: read PNGs as soft boundary maps (boundary benchmark only). Returns ``(results, summary)``;
    results are sorted by image id. A missing result is an error unless ``allow_missing``.
    """
    gt_dir = Path(gt_dir)
    for d in (Path(pred_dir), gt_dir):
        if not d.is_dir():
            raise InputFileError(f"{d}: no such folder")
    if ids is None:
        ids = sorted(p.stem for p in gt_dir.glob("*.mat"))
    if not ids:
        raise InputFileError(f"{gt_dir}: no ground-truth .mat files")
    preds = find_predictions(pred_dir, ids)
    missing = [i for i in ids if i not in preds]
    if missing and not allow_missing:
        raise InputFileError(f"{pred_dir}: no result for {len(missing)} of {len(ids)} images "
                             f"(first: {missing[0]}.mat/.png/.npy)")
    if not preds:
        raise InputFileError(f"{pred_dir}: no result files for these images")
    if soft:
        region = False
    jobs = [(i, preds[i], gt_dir / f"{i}.mat", "soft" if soft else "pred", nthresh, region, boundary)
            for i in ids if i in preds]
    results = list(map_images(_eval_file, jobs, workers=workers, progress=progress))
    results.sort(key=lambda r: r.name)
    return results, collect(results)


def map_images(func, jobs: list, *, workers: int = 1, progress=None):
    """``map(func, jobs)`` in ``workers`` processes (order kept), calling ``progress(done, total)``."""
    total = len(jobs)
    if workers <= 1 or total <= 1:
        for k, job in enumerate(jobs):
            out = func(job)
            if progress:
                progress(k + 1, total)
            yield out
        return
    import multiprocessing as mp

    ctx = mp.get_context("fork" if os.name == "posix" else "spawn")
    with ctx.Pool(min(workers, total)) as pool:
        for k, out in enumerate(pool.imap(func, jobs)):
            if progress:
                progress(k + 1, total)
            yield out
