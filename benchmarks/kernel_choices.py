"""Hand-written kernels against the library call that gives the same result, on BSDS500 test images.

A hand-written kernel stays in seglab only where it is measurably faster than a well-kept library call
with the same result, or does something the library cannot; this script measures each candidate:

- ``histogram``: the Otsu / multi-Otsu / histogram-modes histogram, ``seglab.classical.thresholding.
  gray_histogram`` (numba, two passes) vs ``np.histogram`` (same edges, same counts), 256 bins of the
  luminance;
- ``components``: 4-connected components of equal labels numbered in raster order,
  ``seglab.classical._regions.connected_components`` vs ``skimage.measure.label(connectivity=1)``, on
  SLIC's labels before its connectivity clean-up (what ``slic`` labels) and on the luminance quantised
  to 8 levels;
- ``gmm``: the 5-component colour model of ``graph_cut``: seglab's former hand-written EM
  (k-means++ start, 10 iterations, numba log-density; kept here as the reference) vs scikit-learn's
  ``GaussianMixture`` (same start, same iterations, same covariance floor) and ``score_samples``; both
  fitted on <= 4000 pixels of the middle of the image and evaluated on every pixel.

Runs are interleaved (ours, library, ours, ...) per image and repetition; medians in milliseconds.

    python benchmarks/kernel_choices.py [--n 10] [--reps 5]

writes ``docs/results/kernel_choices.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results" / "kernel_choices"


# ------------------------------------------------------------------------------- the former EM, verbatim
def _component_logpdf(x, weights, means, covs):
    d = x.shape[1]
    prec = np.linalg.inv(covs)
    const = np.log(weights) - 0.5 * np.linalg.slogdet(covs)[1] - 0.5 * d * np.log(2 * np.pi)
    return _logpdf_kernel(np.ascontiguousarray(x), means, prec, const)


def _numba_logpdf():
    from numba import njit

    @njit(cache=False)
    def kernel(x, means, prec, const):
        n, d = x.shape
        k = means.shape[0]
        out = np.empty((n, k))
        diff = np.empty(d)
        for i in range(n):
            for c in range(k):
                for a in range(d):
                    diff[a] = x[i, a] - means[c, a]
                q = 0.0
                for a in range(d):
                    for b in range(d):
                        q += diff[a] * prec[c, a, b] * diff[b]
                out[i, c] = const[c] - 0.5 * q
        return out

    return kernel


_logpdf_kernel = _numba_logpdf()


def handwritten_gmm_nll(x, samples, seed, k=5, iters=10):
    """seglab's hand-written EM of graph_cut before this change (its numba log-density included)."""
    rng = np.random.default_rng(seed)
    if len(samples) > 4000:
        samples = samples[rng.choice(len(samples), 4000, replace=False)]
    n, d = samples.shape
    k = min(k, len(np.unique(samples, axis=0)))
    centres = [samples[rng.integers(n)]]
    d2 = ((samples - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        centres.append(samples[rng.choice(n, p=d2 / d2.sum())] if d2.sum() > 0 else samples[rng.integers(n)])
        d2 = np.minimum(d2, ((samples - centres[-1]) ** 2).sum(1))
    resp = np.eye(k)[((samples[:, None] - np.array(centres)[None]) ** 2).sum(-1).argmin(1)]
    reg = 1e-4 * np.eye(d)
    for it in range(iters + 1):
        nk = resp.sum(0) + 1e-10
        weights = nk / n
        means = resp.T @ samples / nk[:, None]
        covs = np.stack([((samples - means[c]) * resp[:, c:c + 1]).T @ (samples - means[c]) / nk[c] + reg
                         for c in range(k)])
        if it == iters:
            break
        logp = _component_logpdf(samples, weights, means, covs)
        logp -= logp.max(1, keepdims=True)
        resp = np.exp(logp)
        resp /= resp.sum(1, keepdims=True)
    logp = _component_logpdf(x, weights, means, covs)
    m = logp.max(1)
    return -(m + np.log(np.exp(logp - m[:, None]).sum(1)))


def _timed(f, *args):
    t0 = time.perf_counter()
    out = f(*args)
    return out, 1000.0 * (time.perf_counter() - t0)


def run(n: int, reps: int) -> dict:
    from skimage.measure import label as sk_label
    from sklearn.mixture import GaussianMixture

    from seglab.bsds import bsds_root, split_ids
    from seglab.classical._regions import connected_components
    from seglab.classical.interactive import default_box
    from seglab.classical.superpixels import _slic_iterate, lab_features
    from seglab.classical.thresholding import gray_histogram
    from seglab.io import read_image, to_float_image, to_gray

    root = bsds_root()
    ids = split_ids("test")[:n]
    images = [to_float_image(read_image(root / "images" / "test" / f"{i}.jpg")) for i in ids]

    def slic_raw(img):
        lab = lab_features(img).transpose(2, 0, 1).copy()
        h, w = img.shape[:2]
        step = np.sqrt(h * w / 400)
        ys, xs = np.meshgrid(np.arange(step / 2, h, step), np.arange(step / 2, w, step), indexing="ij")
        c = np.zeros((ys.size, 5))
        c[:, 0], c[:, 1] = ys.ravel(), xs.ravel()
        c[:, 2:] = lab[:, ys.astype(int).ravel(), xs.astype(int).ravel()].T
        return _slic_iterate(lab, c, step, 2.0, 10.0, 10, False)

    def sk_components(lab):
        lo = int(lab.min())
        out = sk_label(lab.astype(np.int64) - lo + 1, background=0, connectivity=1)  # no 0: every pixel counts
        return out - 1, int(out.max())

    def sklearn_nll(x, samples, seed):
        rng = np.random.default_rng(seed)
        if len(samples) > 4000:
            samples = samples[rng.choice(len(samples), 4000, replace=False)]
        k = min(5, len(np.unique(samples, axis=0)))
        gm = GaussianMixture(k, covariance_type="full", reg_covar=1e-4, max_iter=10, tol=0.0,
                             init_params="k-means++", random_state=seed)
        gm.fit(samples)
        return -gm.score_samples(x)

    # warm up (numba compilation, imports)
    g = to_gray(images[0][:40, :40])
    gray_histogram(g, 256), np.histogram(g, 256), connected_components(np.zeros((4, 4), np.int32))
    small = images[0][:8, :8].reshape(-1, 3).astype(float)
    handwritten_gmm_nll(small, small, 0), sklearn_nll(small, small, 0)

    rows = {"histogram": [], "components_slic": [], "components_levels": [], "gmm": []}
    agree = {"histogram": True, "components": True}
    gmm_diff = []
    for img in images:
        gray = to_gray(img)
        slic_lab = slic_raw(img)
        levels = np.minimum((gray * 8).astype(np.int32), 7)
        x = np.ascontiguousarray(img.reshape(-1, 3), dtype=np.float64)
        r0, c0, r1, c1 = default_box(img.shape)
        inside = np.ascontiguousarray(img[r0:r1, c0:c1].reshape(-1, 3), dtype=np.float64)
        for _ in range(reps):
            (ours, _), t1 = _timed(gray_histogram, gray, 256)
            (ref, _), t2 = _timed(np.histogram, gray, 256)
            agree["histogram"] &= bool(np.array_equal(ours, ref))
            rows["histogram"].append((t1, t2))
            for key, lab in (("components_slic", slic_lab), ("components_levels", levels)):
                a, t1 = _timed(connected_components, lab)
                b, t2 = _timed(sk_components, lab)
                agree["components"] &= bool(a[1] == b[1] and np.array_equal(a[0], b[0]))
                rows[key].append((t1, t2))
            a, t1 = _timed(handwritten_gmm_nll, x, inside, 0)
            b, t2 = _timed(sklearn_nll, x, inside, 0)
            rows["gmm"].append((t1, t2))
        gmm_diff.append(float(np.median(np.abs(a - b))))
    res = {k: {"ours_ms": float(np.median([r[0] for r in v])), "library_ms": float(np.median([r[1] for r in v]))}
           for k, v in rows.items()}
    res["histogram"]["equal"] = agree["histogram"]
    res["components_slic"]["equal"] = res["components_levels"]["equal"] = agree["components"]
    res["gmm"]["median_abs_nll_difference"] = float(np.median(gmm_diff))
    return {"images": len(images), "reps": reps, "results": res}


def write_markdown(res: dict) -> None:
    names = {
        "histogram": ("256-bin histogram of the luminance", "gray_histogram (numba)", "np.histogram"),
        "components_slic": ("4-connected components, SLIC labels", "connected_components (numba)",
                            "skimage.measure.label"),
        "components_levels": ("4-connected components, 8 gray levels", "connected_components (numba)",
                              "skimage.measure.label"),
        "gmm": ("graph_cut colour model: 5-component EM fit + log-density of every pixel",
                "former hand-written EM", "sklearn GaussianMixture"),
    }
    lines = ["# Hand-written kernels against the equal library call", "",
             f"Median milliseconds per BSDS500 test image (481 x 321), {res['images']} images x {res['reps']} "
             f"interleaved repetitions; `{res['command']}`, {res['date']}, {res['machine']}, load average "
             f"{res['load']} (2 cores shared with other jobs: ratios are more telling than absolute times).", "",
             "| what | ours | ms | library | ms | same result |", "|---|---|---:|---|---:|---|"]
    for key, (what, ours, lib) in names.items():
        r = res["results"][key]
        same = "yes" if r.get("equal") else (f"median abs. difference of -log p: {r['median_abs_nll_difference']:.2g}"
                                             if "median_abs_nll_difference" in r else "no")
        lines.append(f"| {what} | {ours} | {r['ours_ms']:.2f} | {lib} | {r['library_ms']:.2f} | {same} |")
    OUT.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    res = run(args.n, args.reps)
    res.update(command=f"python benchmarks/kernel_choices.py --n {args.n} --reps {args.reps}",
               date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               machine=f"{cpu_model()}, {os.cpu_count()} cores", load=load)
    OUT.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    write_markdown(res)
    print(OUT.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
