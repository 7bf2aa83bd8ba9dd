"""Peer implementations of our classical methods in scikit-image, OpenCV and scikit-learn.

``PEERS[method]`` lists ``(peer_name, fn)`` pairs: ``fn(float_image, **params) -> labels`` runs the
library's implementation of the same algorithm, reading the parameters it shares with our method under
OUR names (defaults as ours; parameters it has no equivalent for are ignored). ``float_image`` is what
our methods receive (:func:`seglab.io.to_float_image`: float32 in [0, 1], H x W or H x W x 3).
The benchmarks (``classical_speed.py``, ``bsds500.py``) run each method beside its peers on the same
images, in the same run.

``BENCH_PARAMS[method]`` optionally fixes parameters for benchmarking (values may be callables of the
image, e.g. a box for an interactive method); otherwise the method's defaults are used.

One section per module of ``seglab.classical``; add a method's peers in its module's section.
"""
from __future__ import annotations

import numpy as np


def _gray(img):
    return img @ np.array([0.299, 0.587, 0.114], np.float32) if img.ndim == 3 else img


def _u8(img):
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


def _rgb_u8(img):
    import cv2

    u8 = _u8(img)
    return cv2.cvtColor(u8, cv2.COLOR_GRAY2RGB) if u8.ndim == 2 else u8


# ------------------------------------------------------------------------------------ thresholding

def sk_otsu(img, nbins=256, **_):
    from skimage.filters import threshold_otsu

    g = _gray(img)
    return (g > threshold_otsu(g, nbins=nbins)).astype(np.int32) if g.min() < g.max() else np.zeros(g.shape, np.int32)


def cv_otsu(img, **_):
    import cv2

    _, out = cv2.threshold(_u8(_gray(img)), 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return out.astype(np.int32)


def sk_multi_otsu(img, k=3, nbins=256, **_):
    from skimage.filters import threshold_multiotsu

    g = _gray(img)
    return np.digitize(g, threshold_multiotsu(g, classes=k, nbins=nbins), right=True).astype(np.int32)


def sk_threshold_minimum(img, **_):
    """Prewitt & Mendelsohn's valley between the two modes of the iteratively smoothed histogram (2 classes)."""
    from skimage.filters import threshold_minimum

    g = _gray(img)
    return (g > threshold_minimum(g)).astype(np.int32)


def sk_threshold_local(img, block_size=35, kernel="gaussian", offset=0.0, **_):
    from skimage.filters import threshold_local

    g = _gray(img)
    method = "mean" if kernel == "box" else "gaussian"
    return (g > threshold_local(g, block_size, method=method, offset=offset)).astype(np.int32)


def cv_adaptive_threshold(img, block_size=35, kernel="gaussian", offset=0.0, **_):
    import cv2

    kind = cv2.ADAPTIVE_THRESH_MEAN_C if kernel == "box" else cv2.ADAPTIVE_THRESH_GAUSSIAN_C
    # OpenCV: pixel > mean - C, with C in 8-bit gray levels
    return cv2.adaptiveThreshold(_u8(_gray(img)), 1, kind, cv2.THRESH_BINARY, block_size,
                                 offset * 255).astype(np.int32)


# -------------------------------------------------------------------------------------- clustering

def _features(img, features="lab", xy_weight=0.0):
    from seglab.classical.clustering import pixel_features

    return pixel_features(img, features, xy_weight).astype(np.float32)


def cv_kmeans(img, k=4, features="lab", xy_weight=0.0, n_init=1, max_iter=100, seed=0, **_):
    import cv2

    cv2.setRNGSeed(seed)
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, max_iter, 1e-5)
    _, labels, _ = cv2.kmeans(_features(img, features, xy_weight), k, None, crit, n_init, cv2.KMEANS_PP_CENTERS)
    return labels.reshape(img.shape[:2]).astype(np.int32)


def sk_kmeans(img, k=4, features="lab", xy_weight=0.0, n_init=1, max_iter=100, seed=0, **_):
    from sklearn.cluster import KMeans

    x = _features(img, features, xy_weight)
    return KMeans(k, n_init=n_init, max_iter=max_iter, random_state=seed).fit_predict(x).reshape(img.shape[:2])


def sk_gmm(img, k=3, features="lab", xy_weight=0.0, covariance="full", max_iter=100, seed=0, **_):
    """scikit-learn's EM on every pixel, then its predict (MAP)."""
    from sklearn.mixture import GaussianMixture

    x = _features(img, features, xy_weight).astype(np.float64)
    model = GaussianMixture(k, covariance_type=covariance, max_iter=max_iter, reg_covar=1e-6, random_state=seed)
    return model.fit(x).predict(x).reshape(img.shape[:2])


def cv_pyr_meanshift(img, hs=10, hr=12.0, **_):
    """OpenCV's mean-shift filtering in 8-bit Lab (hr scaled to its 0..255 L axis), then connected
    components of equal filtered colour (OpenCV has no region fusion or pruning step)."""
    import cv2

    from seglab.classical._regions import connected_components

    lab8 = cv2.cvtColor(_rgb_u8(img), cv2.COLOR_RGB2Lab)
    out = cv2.pyrMeanShiftFiltering(lab8, hs, hr * 2.55)
    packed = (out[..., 0].astype(np.int32) << 16) | (out[..., 1].astype(np.int32) << 8) | out[..., 2]
    return connected_components(packed)[0]


def sk_quickshift(img, hs=10, hr=12.0, **_):
    """Quick shift (Vedaldi & Soatto 2008), mode seeking in (x, y, Lab): Gaussian of sigma hs/2, links
    cut beyond the joint distance hs (ratio hs/hr weighs colour against space)."""
    from skimage.segmentation import quickshift

    rgb = img if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2)
    return quickshift(rgb.astype(np.float64), ratio=min(1.0, hs / hr), kernel_size=hs / 2, max_dist=hs,
                      convert2lab=True, rng=0)


# ------------------------------------------------------------------------------------- superpixels

def sk_slic(img, n_segments=100, compactness=10.0, slic_zero=False, max_num_iter=10, sigma=0.0, **_):
    from skimage.segmentation import slic

    return slic(img, n_segments=n_segments, compactness=compactness, slic_zero=slic_zero,
                max_num_iter=max_num_iter, sigma=sigma, start_label=0,
                channel_axis=-1 if img.ndim == 3 else None)


def sk_felzenszwalb(img, scale=700.0, sigma=0.8, min_size=200, **_):
    from skimage.segmentation import felzenszwalb

    return felzenszwalb(img, scale=scale, sigma=sigma, min_size=min_size,
                        channel_axis=-1 if img.ndim == 3 else None)


# --------------------------------------------------------------------------------------- watershed

def _sk_hminima_markers(img, h, sigma):
    """Markers from scikit-image: h-minima of the same gradient as ours, labelled 8-connected."""
    from skimage.measure import label
    from skimage.morphology import h_minima

    from seglab.classical.watershed import gradient_magnitude

    grad = gradient_magnitude(img, sigma).astype(np.float64)
    return grad, label(h_minima(grad, h) if h > 0 else h_minima(grad, 1e-12), connectivity=2)


def sk_watershed(img, h=0.04, sigma=1.0, compactness=0.0, watershed_line=False, **_):
    from skimage.segmentation import watershed

    grad, markers = _sk_hminima_markers(img, h, sigma)
    return watershed(grad, markers, compactness=compactness, watershed_line=watershed_line)


def cv_watershed(img, h=0.04, sigma=1.0, **_):
    """cv2.watershed from the same h-minima markers; it floods by the image's own colour differences."""
    import cv2

    _, markers = _sk_hminima_markers(img, h, sigma)
    out = cv2.watershed(_rgb_u8(img), markers.astype(np.int32))
    return out  # -1 on the watershed lines


# ------------------------------------------------------------- region, mrf, rag, interactive
# region_growing, split_merge, mrf: no peer (scikit-image's flood fill compares every pixel with the seed's
# value only, not with a growing region's mean; neither library has split-and-merge or an MRF).

def _sk_slic_base(img, n_segments, compactness):
    """The over-segmentation rag_merge uses by default (scikit-image SLIC)."""
    from seglab.classical.rag import over_segmentation

    return over_segmentation(img, n_segments, compactness)


# scikit-image's merge_hierarchical callbacks for our two edge weights (its documented mean-colour recipe)
def _sk_merge_mean(g, src, dst):
    g.nodes[dst]["total color"] += g.nodes[src]["total color"]
    g.nodes[dst]["pixel count"] += g.nodes[src]["pixel count"]
    g.nodes[dst]["mean color"] = g.nodes[dst]["total color"] / g.nodes[dst]["pixel count"]


def _sk_weight_mean(g, src, dst, n):
    return {"weight": np.linalg.norm(g.nodes[dst]["mean color"] - g.nodes[n]["mean color"])}


def _sk_weight_boundary(g, src, dst, n):
    default = {"weight": 0.0, "count": 0}
    a, b = g[src].get(n, default), g[dst].get(n, default)
    count = a["count"] + b["count"]
    return {"count": count, "weight": (a["count"] * a["weight"] + b["count"] * b["weight"]) / count}


def sk_rag_merge(img, threshold=0.1, weight="color", mode="hierarchical", n_segments=400, compactness=10.0,
                 base_labels=None, **_):
    """scikit-image's RAG on the same base regions (4-connected like ours): rag_mean_color / rag_boundary
    (Sobel edge map), then cut_threshold or merge_hierarchical with the matching merge rules."""
    from scipy import ndimage as ndi
    from skimage import graph

    base = _sk_slic_base(img, n_segments, compactness) if base_labels is None else np.asarray(base_labels)
    if weight == "color":
        rag = graph.rag_mean_color(img, base, connectivity=1)
    else:
        chans = img[..., None] if img.ndim == 2 else img
        edges = np.sqrt(sum(ndi.sobel(chans[..., c], 0) ** 2 + ndi.sobel(chans[..., c], 1) ** 2
                            for c in range(chans.shape[2])) / chans.shape[2]) / 8.0
        rag = graph.rag_boundary(base, edges, connectivity=1)
    if mode == "threshold":
        return graph.cut_threshold(base, rag, threshold)

    merge, wfun = ((_sk_merge_mean, _sk_weight_mean) if weight == "color"
                   else (lambda g, s, d: None, _sk_weight_boundary))
    return graph.merge_hierarchical(base, rag, threshold, rag_copy=False, in_place_merge=True,
                                    merge_func=merge, weight_func=wfun)


def _trimap(img, seeds, box):
    from seglab.classical.interactive import trimap

    return trimap(img.shape, seeds, box)


def cv_grabcut(img, box=None, seeds=None, iterations=5, seed=0, **_):
    """cv2.grabCut from the same box / scribbles (mask initialisation, as ours)."""
    import cv2

    tri = _trimap(img, seeds, box)
    mask = np.where(tri == 2, cv2.GC_BGD, np.where(tri == 1, cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    if not ((mask == cv2.GC_BGD).any() and (mask != cv2.GC_BGD).any()):
        return (mask != cv2.GC_BGD).astype(np.int32)
    cv2.setRNGSeed(seed)
    cv2.grabCut(_rgb_u8(img), mask, None, np.zeros((1, 65)), np.zeros((1, 65)), iterations,
                cv2.GC_INIT_WITH_MASK)
    return ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.int32)


def cv_grabcut_1(img, box=None, seeds=None, seed=0, **_):
    """Closest library s-t graph cut: one GrabCut iteration (mixtures fitted to the box / scribbles, one
    min cut). Neither library exposes a plain Boykov-Jolly cut (PyMaxflow is not a dependency)."""
    return cv_grabcut(img, box=box, seeds=seeds, iterations=1, seed=seed)


def _walker_seeds(img, seeds):
    from seglab.classical.interactive import default_walker_seeds

    return default_walker_seeds(img.shape) if seeds is None else np.asarray(seeds)


def _sk_walker(img, seeds, beta, mode):
    from skimage.segmentation import random_walker

    s = _walker_seeds(img, seeds)
    out = random_walker(img, s, beta=beta, mode=mode, tol=1e-3, channel_axis=-1 if img.ndim == 3 else None)
    return np.where(out == 2, 0, out) if set(np.unique(s[s > 0]).tolist()) <= {1, 2} else out


def sk_random_walker_bf(img, seeds=None, beta=130.0, **_):
    return _sk_walker(img, seeds, beta, "bf")


def sk_random_walker_cg_j(img, seeds=None, beta=130.0, **_):
    return _sk_walker(img, seeds, beta, "cg_j")


def sk_chan_vese(img, mu=0.25, lambda1=1.0, lambda2=1.0, tol=1e-3, max_iter=500, dt=0.5, init="checkerboard",
                 init_mask=None, **_):
    """scikit-image's Chan-Vese (gray only: colour images are given their luminance, ours uses all channels)."""
    from skimage.segmentation import chan_vese

    start = init if init_mask is None else (np.asarray(init_mask) > 0) - 0.5
    return chan_vese(_gray(img).astype(np.float64), mu=mu, lambda1=lambda1, lambda2=lambda2, tol=tol,
                     max_num_iter=max_iter, dt=dt, init_level_set=start).astype(np.int32)


PEERS: dict[str, list[tuple[str, object]]] = {
    # thresholding
    "otsu": [("skimage.threshold_otsu", sk_otsu), ("cv2.threshold OTSU", cv_otsu)],
    "multi_otsu": [("skimage.threshold_multiotsu", sk_multi_otsu)],
    "histogram_modes": [("skimage.threshold_minimum", sk_threshold_minimum)],
    "adaptive_threshold": [("skimage.threshold_local", sk_threshold_local),
                           ("cv2.adaptiveThreshold", cv_adaptive_threshold)],
    # clustering
    "kmeans": [("cv2.kmeans", cv_kmeans), ("sklearn.KMeans", sk_kmeans)],
    "gmm": [("sklearn.GaussianMixture (all pixels)", sk_gmm)],  # cv2.ml is not in opencv-python-headless
    "meanshift": [("cv2.pyrMeanShiftFiltering+label", cv_pyr_meanshift), ("skimage.quickshift", sk_quickshift)],
    # superpixels
    "slic": [("skimage.slic", sk_slic)],
    "felzenszwalb": [("skimage.felzenszwalb", sk_felzenszwalb)],
    # watershed
    "watershed": [("skimage.watershed", sk_watershed), ("cv2.watershed", cv_watershed)],
    # rag, interactive (region_growing, split_merge, mrf: no peer, see their section)
    "rag_merge": [("skimage.graph RAG + merge_hierarchical / cut_threshold", sk_rag_merge)],
    "graph_cut": [("cv2.grabCut, 1 iteration", cv_grabcut_1)],
    "grabcut": [("cv2.grabCut", cv_grabcut)],
    "random_walker": [("skimage.random_walker mode=bf", sk_random_walker_bf),
                      ("skimage.random_walker mode=cg_j", sk_random_walker_cg_j)],
    "chan_vese": [("skimage.chan_vese (luminance)", sk_chan_vese)],
}

BENCH_PARAMS: dict[str, dict] = {
    # parameters fixed for benchmarking; values may be callables of the float image
}
