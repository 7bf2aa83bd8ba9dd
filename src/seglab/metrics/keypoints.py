"""Keypoint metrics.

* :func:`match_points` / :func:`point_detection_scores`: one-to-one matching of predicted and true points
  within a radius (the most matches, then the least total distance; Hungarian algorithm, Kuhn 1955, via
  ``scipy.optimize.linear_sum_assignment``), giving precision, recall, F1 and the mean localisation error
  (cell / nucleus centre detection).
* :func:`pck` and :func:`mean_pixel_error` for landmark tasks with a fixed set of K keypoints
  (PCK: Yang & Ramanan, "Articulated human detection with flexible mixtures of parts", TPAMI 2013).
* :func:`oks_evaluate`: COCO keypoint AP from the object keypoint similarity (OKS; Lin et al., ECCV 2014),
  written here from the protocol and equal to pycocotools' ``COCOeval(iouType="keypoints")``.

Points are ``(x, y)`` in pixels.
"""
from __future__ import annotations

import numpy as np

from ..errors import ParameterError, SeglabError, check_range

__all__ = ["match_points", "point_detection_scores", "pck", "mean_pixel_error", "oks", "oks_evaluate",
           "holds_keypoints", "score_keypoint_results",
           "COCO_PERSON_SIGMAS", "OKS_STAT_NAMES"]


def _points(x, name) -> np.ndarray:
    a = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)
    if a.size == 0:
        return a.reshape(0, 2)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ParameterError(f"{name} must be M x 2 (x, y), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ParameterError(f"{name} holds NaN or infinite coordinates")
    return a


def match_points(pred, gt, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-to-one matches of ``pred`` (``M x 2``) to ``gt`` (``N x 2``) at distance ``<= radius``: the
    largest number of matches and, among those, the smallest total distance.

    Returns ``(pred_index, gt_index, distance)`` of the matched pairs.
    """
    from scipy.optimize import linear_sum_assignment

    check_range("radius", radius, 0)
    p, g = _points(pred, "pred"), _points(gt, "gt")
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    if len(p) == 0 or len(g) == 0:
        return empty
    d = np.sqrt(((p[:, None, :] - g[None, :, :]) ** 2).sum(-1))
    ok = d <= radius
    if not ok.any():
        return empty
    # A forbidden pair costs more than any set of allowed pairs, so the assignment first avoids forbidden
    # pairs (most matches), then minimises the distance.
    rows_used, cols_used = ok.any(1), ok.any(0)
    sub = d[np.ix_(rows_used, cols_used)]
    big = radius * (min(sub.shape) + 1) + 1.0
    cost = np.where(ok[np.ix_(rows_used, cols_used)], sub, big)
    r, c = linear_sum_assignment(cost)
    keep = cost[r, c] < big
    pi, gi = np.flatnonzero(rows_used)[r[keep]], np.flatnonzero(cols_used)[c[keep]]
    return pi.astype(np.int64), gi.astype(np.int64), d[pi, gi]


def point_detection_scores(preds, gts, radius: float) -> dict:
    """Precision, recall, F1 and mean localisation error of point detection over one image (``preds`` and
    ``gts`` ``M x 2`` / ``N x 2``) or a list of images (lists of such arrays), matched by
    :func:`match_points` within ``radius``. Undefined ratios (nothing predicted / nothing to find) are NaN."""
    if not isinstance(preds, (list, tuple)):
        preds, gts = [preds], [gts]
    if len(preds) != len(gts):
        raise ParameterError(f"{len(preds)} predicted point sets for {len(gts)} ground-truth sets")
    tp = fp = fn = 0
    errors = []
    for p, g in zip(preds, gts):
        p, g = _points(p, "pred"), _points(g, "gt")
        _, _, dist = match_points(p, g, radius)
        tp += len(dist)
        fp += len(p) - len(dist)
        fn += len(g) - len(dist)
        errors.append(dist)
    err = np.concatenate(errors) if errors else np.zeros(0)
    nan = float("nan")
    return {"radius": float(radius), "tp": tp, "fp": fp, "fn": fn,
            "precision": tp / (tp + fp) if tp + fp else nan, "recall": tp / (tp + fn) if tp + fn else nan,
            "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else nan,
            "mean_error": float(err.mean()) if err.size else nan,
            "median_error": float(np.median(err)) if err.size else nan}


def _landmarks(pred, gt, visible):
    p = np.asarray(pred.detach().cpu() if hasattr(pred, "detach") else pred, dtype=np.float64)
    g = np.asarray(gt.detach().cpu() if hasattr(gt, "detach") else gt, dtype=np.float64)
    if p.shape != g.shape or p.shape[-1] != 2:
        raise ParameterError(f"pred and gt must both be (..., K, 2), got shapes {p.shape} and {g.shape}")
    v = (np.ones(p.shape[:-1], bool) if visible is None
         else np.asarray(visible.detach().cpu() if hasattr(visible, "detach") else visible) > 0)
    if v.shape != p.shape[:-1]:
        raise ParameterError(f"visible must have shape {p.shape[:-1]}, got {v.shape}")
    if not np.isfinite(g[v]).all():
        raise ParameterError("gt holds NaN or infinite coordinates at visible keypoints")
    if not np.isfinite(p[v]).all():
        raise ParameterError("pred holds NaN or infinite coordinates at visible keypoints")
    return p, g, v


def pck(pred, gt, threshold: float, *, visible=None, normalize=None) -> float:
    """Percentage of correct keypoints: the fraction of visible keypoints whose predicted position lies
    within ``threshold * normalize`` pixels of the truth.

    ``pred`` / ``gt`` are ``(N, K, 2)`` (or ``(K, 2)``); ``visible`` ``(N, K)`` (default all); ``normalize``
    a per-instance length ``(N,)`` (head size for PCKh, torso or box size) or a number (default 1, so
    ``threshold`` is in pixels). NaN when no keypoint is visible."""
    p, g, v = _landmarks(pred, gt, visible)
    check_range("threshold", threshold, 0)
    norm = np.asarray(1.0 if normalize is None else normalize, dtype=np.float64)
    if norm.ndim == 1:
        if norm.shape[0] != p.shape[0] or p.ndim != 3:
            raise ParameterError(f"normalize must hold one length per instance ({p.shape[0]}), got {norm.shape}")
        norm = norm[:, None]
    if (norm <= 0).any():
        raise ParameterError("normalize lengths must be positive")
    dist = np.sqrt(((p - g) ** 2).sum(-1))
    ok = dist <= threshold * np.broadcast_to(norm, dist.shape)
    return float(ok[v].mean()) if v.any() else float("nan")


def mean_pixel_error(pred, gt, *, visible=None) -> float:
    """Mean Euclidean distance in pixels between predicted and true visible keypoints (NaN if none)."""
    p, g, v = _landmarks(pred, gt, visible)
    dist = np.sqrt(((p - g) ** 2).sum(-1))
    return float(dist[v].mean()) if v.any() else float("nan")


# -- COCO keypoint AP (object keypoint similarity) ------------------------------------------------------
#: Per-keypoint OKS constants of the 17 COCO person keypoints (nose, eyes, ears, shoulders, elbows, wrists,
#: hips, knees, ankles), as published with the COCO keypoint challenge.
COCO_PERSON_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87,
                               .89, .89]) / 10.0
OKS_STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
_OKS_THRESHOLDS = np.linspace(0.5, 0.95, 10)
_RECALL_POINTS = np.linspace(0.0, 1.0, 101)
_AREA_RANGES = ((0.0, 1e10), (32.0 ** 2, 96.0 ** 2), (96.0 ** 2, 1e10))  # all, medium, large


def oks(dt_keypoints, gt_keypoints, gt_areas, gt_boxes, sigmas) -> np.ndarray:
    """Object keypoint similarity of ``D`` detections and ``G`` annotations: ``D x G``.

    ``dt_keypoints`` ``D x K x 3``, ``gt_keypoints`` ``G x K x 3`` (x, y, visibility), ``gt_areas`` ``G``
    (object areas, the scale ``s^2``), ``gt_boxes`` ``G x 4`` COCO ``xywh`` and ``sigmas`` ``K``.
    ``OKS = mean over labelled keypoints of exp(-d^2 / (2 s^2 (2 sigma)^2))``; for an annotation without
    labelled keypoints, ``d`` is the distance to its box enlarged by the box size on each side, averaged
    over all ``K`` keypoints (COCO's rule)."""
    var = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    dt = np.asarray(dt_keypoints, dtype=np.float64).reshape(len(dt_keypoints), len(var), 3)
    gt = np.asarray(gt_keypoints, dtype=np.float64).reshape(len(gt_keypoints), len(var), 3)
    out = np.zeros((len(dt), len(gt)))
    if len(dt) == 0 or len(gt) == 0:
        return out
    xd, yd = dt[:, :, 0], dt[:, :, 1]
    for j in range(len(gt)):
        xg, yg, vg = gt[j, :, 0], gt[j, :, 1], gt[j, :, 2]
        labelled = vg > 0
        if labelled.any():
            dx, dy = xd - xg, yd - yg
        else:
            bx, by, bw, bh = np.asarray(gt_boxes[j], dtype=np.float64)
            x0, x1, y0, y1 = bx - bw, bx + 2 * bw, by - bh, by + 2 * bh
            dx = np.maximum(0, x0 - xd) + np.maximum(0, xd - x1)
            dy = np.maximum(0, y0 - yd) + np.maximum(0, yd - y1)
        e = (dx ** 2 + dy ** 2) / var / (gt_areas[j] + np.spacing(1)) / 2
        if labelled.any():
            e = e[:, labelled]
        out[:, j] = np.exp(-e).sum(axis=1) / e.shape[1]
    return out


def _load(x, what):
    from .instance import _load_json

    return _load_json(x, what)


def _kp_array(values, k, what):
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    if a.size != 3 * k:
        raise SeglabError(f"{what} has {a.size} keypoint values, expected 3 x {k} (x, y, v per keypoint)")
    if np.isnan(a).any():
        raise SeglabError(f"{what} holds NaN keypoint values")
    return a.reshape(k, 3)


def _match_image(ious, gt_ignore, gt_crowd, det_area, area_range):
    """COCO's greedy matching of one image's score-sorted detections (rows of ``ious``) to its annotations
    sorted with the ignored ones last; returns (matched T x D, det_ignored T x D)."""
    t_n, (d_n, g_n) = len(_OKS_THRESHOLDS), ious.shape
    gt_taken = np.zeros((t_n, g_n), bool)
    matched = np.zeros((t_n, d_n), bool)
    det_ignored = np.zeros((t_n, d_n), bool)
    if d_n and g_n:
        for t, thr in enumerate(_OKS_THRESHOLDS):
            for d in range(d_n):
                best, m = min(thr, 1 - 1e-10), -1
                for g in range(g_n):
                    if gt_taken[t, g] and not gt_crowd[g]:
                        continue
                    if m > -1 and not gt_ignore[m] and gt_ignore[g]:
                        break  # only ignored annotations are left
                    if ious[d, g] < best:
                        continue
                    best, m = ious[d, g], g
                if m == -1:
                    continue
                det_ignored[t, d] = gt_ignore[m]
                matched[t, d] = True
                gt_taken[t, m] = True
    outside = (det_area < area_range[0]) | (det_area > area_range[1])
    det_ignored |= ~matched & outside[None, :]
    return matched, det_ignored


def _precision_recall(per_image, max_det):
    """Interpolated precision at the 101 recall points (T x R) and the final recall (T) of one category
    and area range, from the per-image matches (COCO's accumulate); -1 where there is no annotation."""
    t_n = len(_OKS_THRESHOLDS)
    precision = -np.ones((t_n, len(_RECALL_POINTS)))
    recall = -np.ones(t_n)
    if not per_image:
        return precision, recall
    scores = np.concatenate([e[0][:max_det] for e in per_image])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([e[1][:, :max_det] for e in per_image], axis=1)[:, order]
    det_ignored = np.concatenate([e[2][:, :max_det] for e in per_image], axis=1)[:, order]
    n_gt = int(sum(np.count_nonzero(~e[3]) for e in per_image))
    if n_gt == 0:
        return precision, recall
    tp = np.cumsum(matched & ~det_ignored, axis=1).astype(float)
    fp = np.cumsum(~matched & ~det_ignored, axis=1).astype(float)
    for t in range(t_n):
        nd = tp.shape[1]
        rc = tp[t] / n_gt
        pr = tp[t] / (fp[t] + tp[t] + np.spacing(1))
        recall[t] = rc[-1] if nd else 0.0
        pr = np.maximum.accumulate(pr[::-1])[::-1] if nd else pr  # precision envelope
        idx = np.searchsorted(rc, _RECALL_POINTS, side="left")
        q = np.zeros(len(_RECALL_POINTS))
        ok = idx < nd
        q[ok] = pr[idx[ok]]  # recall points beyond the last reached recall keep precision 0
        precision[t] = q
    return precision, recall


def oks_evaluate(gt, results, *, sigmas=None, max_dets: int = 20) -> dict:
    """COCO keypoint AP / AR: OKS thresholds 0.50:0.05:0.95, 101 recall points, at most ``max_dets``
    detections per image, area ranges all / medium / large, crowd and keypoint-less annotations ignored.

    ``gt``: a COCO keypoints dict or JSON path (``images``, ``annotations`` with ``keypoints``, ``bbox``,
    ``area``, ``iscrowd``, ``categories``); ``results``: a list (or JSON path) of ``{image_id,
    category_id, keypoints, score}``. ``sigmas``: the ``K`` OKS constants (default
    :data:`COCO_PERSON_SIGMAS` when ``K == 17``). Returns ``{"stats": {AP, AP50, AP75, APm, APl, AR,
    AR50, AR75, ARm, ARl} (-1 where undefined), "precision": T x R x C x A, "recall": T x C x A}``,
    the same numbers as pycocotools' ``COCOeval(iouType="keypoints")``.
    """
    from ..errors import InputFileError

    g = _load(gt, "ground-truth")
    res = _load(results, "results")
    if isinstance(res, dict) and "annotations" in res:
        res = res["annotations"]
    if not isinstance(g, dict) or "annotations" not in g or "images" not in g:
        raise InputFileError("COCO keypoint ground truth must be a dict with 'images', 'annotations', 'categories'")
    if not isinstance(res, list):
        raise InputFileError("COCO keypoint results must be a list of {image_id, category_id, keypoints, score}")
    check_range("max_dets", max_dets, 1)
    anns = g["annotations"]
    k = None
    for a in anns:
        if "keypoints" in a:
            k = len(a["keypoints"]) // 3
            break
    if k is None:
        k = next((len(c.get("keypoints", [])) for c in g.get("categories", []) if c.get("keypoints")), 0)
    sig = COCO_PERSON_SIGMAS if sigmas is None and k == 17 else sigmas
    if sig is None:
        raise ParameterError(f"parameter 'sigmas' is needed for {k} keypoints (the COCO constants are for 17)")
    sig = np.asarray(sig, dtype=np.float64).reshape(-1)
    if sig.size != k:
        raise ParameterError(f"parameter 'sigmas' has {sig.size} values for {k} keypoints")
    img_ids = sorted({int(im["id"]) for im in g["images"]})
    known = set(img_ids)
    cat_ids = sorted({int(c["id"]) for c in g.get("categories", [])})
    gts, dts = {}, {}
    for a in anns:
        missing = [f for f in ("image_id", "category_id", "area", "bbox") if f not in a]
        if missing:
            raise InputFileError(f"annotation {a.get('id')}: no {', '.join(missing)}")
        kp = _kp_array(a.get("keypoints", []), k, f"annotation {a.get('id')}")
        nkp = a.get("num_keypoints", int(np.count_nonzero(kp[:, 2] > 0)))
        ignore = bool(a.get("iscrowd", 0)) or nkp == 0
        gts.setdefault((int(a["image_id"]), int(a["category_id"])), []).append(
            (kp, float(a["area"]), np.asarray(a["bbox"], float), ignore, bool(a.get("iscrowd", 0))))
    for n, r in enumerate(res):
        if int(r.get("image_id", -1)) not in known:
            raise SeglabError(f"result {n}: image_id {r.get('image_id')!r} is not in the ground truth")
        kp = _kp_array(r.get("keypoints", []), k, f"result {n}")
        area = (kp[:, 0].max() - kp[:, 0].min()) * (kp[:, 1].max() - kp[:, 1].min())
        dts.setdefault((int(r["image_id"]), int(r["category_id"])), []).append((kp, float(r["score"]), area))
    t_n, r_n, a_n = len(_OKS_THRESHOLDS), len(_RECALL_POINTS), len(_AREA_RANGES)
    precision = -np.ones((t_n, r_n, len(cat_ids), a_n))
    recall = -np.ones((t_n, len(cat_ids), a_n))
    for ci, c in enumerate(cat_ids):
        per_area = [[] for _ in _AREA_RANGES]
        for i in img_ids:
            gl, dl = gts.get((i, c), []), dts.get((i, c), [])
            if not gl and not dl:
                continue
            d_order = np.argsort([-d[1] for d in dl], kind="mergesort")[:max_dets]
            dl = [dl[j] for j in d_order]
            d_kp = np.array([d[0] for d in dl]).reshape(len(dl), k, 3)
            d_score = np.array([d[1] for d in dl], float)
            d_area = np.array([d[2] for d in dl], float)
            ious_all = oks(d_kp, np.array([x[0] for x in gl]).reshape(len(gl), k, 3),
                           np.array([x[1] for x in gl]), np.array([x[2] for x in gl]).reshape(-1, 4), sig)
            for ai, rng in enumerate(_AREA_RANGES):
                ign = np.array([x[3] or x[1] < rng[0] or x[1] > rng[1] for x in gl], bool)
                g_order = np.argsort(ign, kind="mergesort")
                crowd = np.array([gl[j][4] for j in g_order], bool)
                matched, det_ignored = _match_image(ious_all[:, g_order], ign[g_order], crowd, d_area, rng)
                per_area[ai].append((d_score, matched, det_ignored, ign[g_order]))
        for ai in range(a_n):
            precision[:, :, ci, ai], recall[:, ci, ai] = _precision_recall(per_area[ai], max_dets)

    def mean(x):
        x = x[x > -1]
        return float(x.mean()) if x.size else -1.0

    stats = {"AP": mean(precision[..., 0]), "AP50": mean(precision[0, ..., 0]), "AP75": mean(precision[5, ..., 0]),
             "APm": mean(precision[..., 1]), "APl": mean(precision[..., 2]),
             "AR": mean(recall[..., 0]), "AR50": mean(recall[0, :, 0]), "AR75": mean(recall[5, :, 0]),
             "ARm": mean(recall[..., 1]), "ARl": mean(recall[..., 2])}
    return {"stats": stats, "precision": precision, "recall": recall}


def holds_keypoints(results) -> bool:
    """Whether COCO results (a list, a dict with ``annotations`` or a JSON path) hold keypoints, i.e. call
    for :func:`oks_evaluate` rather than box / mask AP."""
    res = _load(results, "results")
    if isinstance(res, dict):
        res = res.get("annotations", [])
    return isinstance(res, list) and bool(res) and isinstance(res[0], dict) and "keypoints" in res[0]


def score_keypoint_results(gt, results, *, sigmas=None) -> dict | None:
    """What ``seglab score --coco-gt GT --coco-pred RES`` reports for keypoint results: ``{"stats":
    {AP, ...}, "summary": one printable line}``, or None when ``results`` hold no keypoints (then box /
    mask evaluation applies)."""
    if not holds_keypoints(results):
        return None
    stats = oks_evaluate(gt, results, sigmas=sigmas)["stats"]
    line = "COCO keypoints (OKS): " + "  ".join(f"{k} {100 * v:.2f}" if v >= 0 else f"{k} -" for k, v in stats.items())
    return {"stats": stats, "summary": line}
