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
- ``argsort``: the stable order of Felzenszwalb-Huttenlocher's 8-neighbour edge weights,
  ``seglab.classical._regions.stable_argsort_nonneg`` (numba LSD radix sort) vs
  ``np.argsort(kind="stable")`` (same order);
- ``hminima``: the h-minima transform of the watershed's gradient (h = 0.04), our numba
  reconstruction by erosion vs ``skimage.morphology.reconstruction(method="erosion")`` (same values);
- ``flood``: the watershed flooding of the gradient from its h-minima markers, our bucket-queue flood
  (``seglab.classical.watershed.flood``) vs ``skimage.segmentation.watershed`` (ties and the 2^16-level
  quantisation may move a few pixels: the fraction that differs is reported);
- ``lloyd``: k-means (k = 4, Lab features) from the same k-means++ centres, our Lloyd with Hamerly's bounds
  vs ``sklearn.cluster.KMeans(algorithm="lloyd", n_init=1)`` (same labels);
- ``gmm``: the 5-component colour model of ``graph_cut``: seglab's hand-written EM (k-means++ start, 10
  iterations, then the numba mixture density of every pixel) vs scikit-learn's ``GaussianMixture`` (same
  start, same iterations, same covariance floor) with ``score_samples``, and vs scikit-learn's fit with
  seglab's density (``gmm_sklearn_fit``); all fitted on <= 4000 pixels of the middle of the image and
  evaluated on every pixel. (The import of ``sklearn.mixture``, 1.3 s of CPU once per process, is not in
  these times: see ``benchmarks/cold_start.py``.)

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


def _numba_components():
    from numba import njit

    @njit(cache=False)
    def components(labels):
        h, w = labels.shape
        out = np.full((h, w), -1, np.int32)
        stack = np.empty(h * w, np.int64)
        n = 0
        for r0 in range(h):
            for c0 in range(w):
                if out[r0, c0] >= 0:
                    continue
                lab = labels[r0, c0]
                out[r0, c0] = n
                stack[0] = r0 * w + c0
                top = 1
                while top > 0:
                    top -= 1
                    p = stack[top]
                    r = p // w
                    c = p - r * w
                    if r > 0 and out[r - 1, c] < 0 and labels[r - 1, c] == lab:
                        out[r - 1, c] = n
                        stack[top] = p - w
                        top += 1
                    if r < h - 1 and out[r + 1, c] < 0 and labels[r + 1, c] == lab:
                        out[r + 1, c] = n
                        stack[top] = p + w
                        top += 1
                    if c > 0 and out[r, c - 1] < 0 and labels[r, c - 1] == lab:
                        out[r, c - 1] = n
                        stack[top] = p - 1
                        top += 1
                    if c < w - 1 and out[r, c + 1] < 0 and labels[r, c + 1] == lab:
                        out[r, c + 1] = n
                        stack[top] = p + 1
                        top += 1
                n += 1
        return out, n

    return components


handwritten_components = _numba_components()  # seglab's flood fill before this change


def _timed(f, *args):
    t0 = time.perf_counter()
    out = f(*args)
    return out, 1000.0 * (time.perf_counter() - t0)


def run(n: int, reps: int) -> dict:
    from sklearn.mixture import GaussianMixture

    from seglab.bsds import bsds_root, split_ids
    from seglab.classical._regions import connected_components
    from seglab.classical.interactive import _gmm_nll, default_box
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


    def sklearn_nll(x, samples, seed):
        rng = np.random.default_rng(seed)
        if len(samples) > 4000:
            samples = samples[rng.choice(len(samples), 4000, replace=False)]
        k = min(5, len(np.unique(samples, axis=0)))
        gm = GaussianMixture(k, covariance_type="full", reg_covar=1e-4, max_iter=10, tol=0.0,
                             init_params="k-means++", random_state=seed)
        gm.fit(samples)
        return -gm.score_samples(x)

    def sklearn_fit_our_density(x, samples, seed):
        from seglab.classical.clustering import fit_gmm, gmm_neg_log_density

        rng = np.random.default_rng(seed)
        if len(samples) > 4000:
            samples = samples[rng.choice(len(samples), 4000, replace=False)]
        k = min(5, len(np.unique(samples, axis=0)))
        gm = fit_gmm(samples, k, max_iter=10, tol=0.0, reg_covar=1e-4, init="k-means++", seed=seed)
        return gmm_neg_log_density(x, gm.weights_, gm.means_, gm.precisions_cholesky_)

    # warm up (numba compilation, imports)
    g = to_gray(images[0][:40, :40])
    gray_histogram(g, 256), np.histogram(g, 256), connected_components(np.zeros((4, 4), np.int32))
    handwritten_components(np.zeros((4, 4), np.int32))
    small = images[0][:8, :8].reshape(-1, 3).astype(float)
    _gmm_nll(small, small, 0), sklearn_nll(small, small, 0), sklearn_fit_our_density(small, small, 0)

    from skimage.morphology import reconstruction
    from sklearn.cluster import KMeans

    from seglab.classical._regions import pixel_edges, stable_argsort_nonneg
    from seglab.classical.clustering import _lloyd, kmeans_fit, pixel_features
    from seglab.classical.superpixels import _gaussian
    from skimage.segmentation import watershed as sk_watershed

    from seglab.classical.watershed import _reconstruct_erosion, flood, gradient_magnitude, h_minima_markers

    def sk_kmeans(x, centers):
        km = KMeans(len(centers), init=centers, n_init=1, algorithm="lloyd", max_iter=100, tol=0.0)
        return km.fit_predict(x)

    def our_kmeans(x, centers):
        return _lloyd(x, centers.copy(), 100, 1e-10)[0]

    stable_argsort_nonneg(np.ones(4, np.float32))
    _reconstruct_erosion(np.ones((4, 4)), np.ones((4, 4)))
    rows = {"histogram": [], "components_slic": [], "components_levels": [], "argsort": [], "hminima": [],
            "flood": [], "lloyd": [], "gmm": [], "gmm_sklearn_fit": []}
    agree = {"histogram": True, "components": True, "argsort": True, "hminima": True, "lloyd": True}
    gmm_diff = []
    gmm_diff_seglab = []
    lloyd_diff = []
    flood_diff = []
    for img in images:
        gray = to_gray(img)
        slic_lab = slic_raw(img)
        levels = np.minimum((gray * 8).astype(np.int32), 7)
        x = np.ascontiguousarray(img.reshape(-1, 3), dtype=np.float64)
        r0, c0, r1, c1 = default_box(img.shape)
        inside = np.ascontiguousarray(img[r0:r1, c0:c1].reshape(-1, 3), dtype=np.float64)
        fh = np.ascontiguousarray(_gaussian(img * np.float32(255.0), 0.8))
        wgt = pixel_edges(fh, True)[2]
        grad = gradient_magnitude(img, 1.0).astype(np.float64)
        feats = pixel_features(img, "lab")
        markers = h_minima_markers(grad, 0.04)
        centers = kmeans_fit(feats, 4, np.random.default_rng(0), max_iter=0)[1]
        for _ in range(reps):
            a, t1 = _timed(stable_argsort_nonneg, wgt)
            b, t2 = _timed(np.argsort, wgt, -1, "stable")
            agree["argsort"] &= bool(np.array_equal(a, b))
            rows["argsort"].append((t1, t2))
            a, t1 = _timed(_reconstruct_erosion, grad + 0.04, grad)
            b, t2 = _timed(lambda m, g: reconstruction(m, g, method="erosion"), grad + 0.04, grad)
            agree["hminima"] &= bool(np.allclose(a, b, rtol=0, atol=1e-12))
            rows["hminima"].append((t1, t2))
            a, t1 = _timed(flood, grad, markers)
            b, t2 = _timed(sk_watershed, grad, markers)
            flood_diff.append(float(np.mean(a != b)))
            rows["flood"].append((t1, t2))
            a, t1 = _timed(our_kmeans, feats, centers)
            b, t2 = _timed(sk_kmeans, feats, centers)
            agree["lloyd"] &= bool(np.array_equal(a, b))
            lloyd_diff.append(float(np.mean(a != b)))
            rows["lloyd"].append((t1, t2))
            (ours, _), t1 = _timed(gray_histogram, gray, 256)
            (ref, _), t2 = _timed(np.histogram, gray, 256)
            agree["histogram"] &= bool(np.array_equal(ours, ref))
            rows["histogram"].append((t1, t2))
            for key, lab in (("components_slic", slic_lab), ("components_levels", levels)):
                a, t1 = _timed(handwritten_components, lab)
                b, t2 = _timed(connected_components, lab)  # seglab's call of skimage.measure.label
                agree["components"] &= bool(a[1] == b[1] and np.array_equal(a[0], b[0]))
                rows[key].append((t1, t2))
            a, t1 = _timed(_gmm_nll, x, inside, 0)
            b, t2 = _timed(sklearn_nll, x, inside, 0)
            c, t3 = _timed(sklearn_fit_our_density, x, inside, 0)
            rows["gmm"].append((t1, t2))
            rows["gmm_sklearn_fit"].append((t1, t3))
        gmm_diff.append(float(np.median(np.abs(a - b))))
        gmm_diff_seglab.append(float(np.median(np.abs(a - c))))
    res = {k: {"ours_ms": float(np.median([r[0] for r in v])), "library_ms": float(np.median([r[1] for r in v]))}
           for k, v in rows.items()}
    res["histogram"]["equal"] = agree["histogram"]
    res["components_slic"]["equal"] = res["components_levels"]["equal"] = agree["components"]
    for key in ("argsort", "hminima", "lloyd"):
        res[key]["equal"] = agree[key]
    res["lloyd"]["fraction_of_pixels_differing"] = float(np.median(lloyd_diff))
    res["flood"]["fraction_of_pixels_differing"] = float(np.median(flood_diff))
    res["gmm"]["median_abs_nll_difference"] = float(np.median(gmm_diff))
    res["gmm_sklearn_fit"]["median_abs_nll_difference"] = float(np.median(gmm_diff_seglab))
    return {"images": len(images), "reps": reps, "results": res}


def write_markdown(res: dict) -> None:
    names = {
        "histogram": ("256-bin histogram of the luminance", "gray_histogram (numba)", "np.histogram"),
        "components_slic": ("4-connected components, SLIC labels", "former flood fill (numba)",
                            "skimage.measure.label (seglab's connected_components)"),
        "components_levels": ("4-connected components, 8 gray levels", "former flood fill (numba)",
                              "skimage.measure.label (seglab's connected_components)"),
        "argsort": ("stable argsort of the 8-neighbour edge weights (Felzenszwalb)",
                    "stable_argsort_nonneg (numba radix)", "np.argsort(kind='stable')"),
        "hminima": ("h-minima: reconstruction by erosion of the gradient", "_reconstruct_erosion (numba)",
                    "skimage.morphology.reconstruction"),
        "flood": ("watershed flooding from the h-minima markers", "flood (numba bucket queue)",
                  "skimage.segmentation.watershed"),
        "lloyd": ("k-means, k = 4, Lab, same start", "_lloyd (numba, Hamerly bounds)",
                  "sklearn KMeans(algorithm='lloyd')"),
        "gmm": ("graph_cut colour model: 5-component EM fit + log-density of every pixel",
                "_gmm_nll (numpy EM + numba density)", "sklearn GaussianMixture (fit + score_samples)"),
        "gmm_sklearn_fit": ("the same, scikit-learn's fit with our density", "_gmm_nll (numpy EM + numba density)",
                            "sklearn fit + gmm_neg_log_density"),
    }
    lines = ["# Hand-written kernels against the equal library call", "",
             f"Median milliseconds per BSDS500 test image (481 x 321), {res['images']} images x {res['reps']} "
             f"interleaved repetitions; `{res['command']}`, {res['date']}, {res['machine']}, load average "
             f"{res['load']} (2 cores shared with other jobs: ratios are more telling than absolute times).", "",
             "| what | ours | ms | library | ms | same result |", "|---|---|---:|---|---:|---|"]
    for key, (what, ours, lib) in names.items():
        r = res["results"][key]
        if r.get("equal"):
            same = "yes"
        elif "median_abs_nll_difference" in r:
            same = f"no: median abs. difference of -log p {r['median_abs_nll_difference']:.2g} (other start)"
        elif "fraction_of_pixels_differing" in r:
            same = f"no: {100 * r['fraction_of_pixels_differing']:.2g} % of pixels differ (median)"
        else:
            same = "no"
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
