import numpy as np
import pytest
import skimage.data
from skimage.segmentation import felzenszwalb as sk_felzenszwalb
from skimage.segmentation import slic as sk_slic

import seglab
from seglab.classical._regions import connected_components, merge_small_regions, stable_argsort_nonneg
from seglab.errors import ParameterError
from seglab.io import to_float_image


def same_partition(a, b):
    """True when a and b are the same partition up to renaming of labels."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))


def pieces(rng, shape=(48, 64)):
    """Four constant colour rectangles with mild noise, and their true labels."""
    truth = np.zeros(shape, int)
    truth[:, 25:] = 1
    truth[30:, :] += 2
    colours = np.array([[0.9, 0.1, 0.1], [0.1, 0.8, 0.2], [0.1, 0.2, 0.9], [0.9, 0.9, 0.2]])
    img = colours[truth] + rng.normal(0, 0.02, shape + (3,))
    return np.clip(img, 0, 1), truth


def test_felzenszwalb_equals_skimage():
    crop = skimage.data.astronaut()[100:260, 150:330]
    img = to_float_image(crop)
    for scale, sigma, min_size in ((100, 0.8, 20), (500, 0.5, 50), (300, 0.0, 1)):
        ours = seglab.segment(crop, "felzenszwalb", scale=scale, sigma=sigma, min_size=min_size)
        ref = sk_felzenszwalb(img, scale=scale, sigma=sigma, min_size=min_size)
        assert same_partition(ours, ref)
    gray = seglab.segment(skimage.data.coins()[:120, :150], "felzenszwalb", scale=200, min_size=100)
    ref = sk_felzenszwalb(to_float_image(skimage.data.coins()[:120, :150]), scale=200, sigma=0.8, min_size=100)
    assert same_partition(gray, ref)


def test_felzenszwalb_recovers_piecewise_constant_regions(rng):
    img, truth = pieces(rng)
    assert same_partition(seglab.segment(img, "felzenszwalb", scale=300, sigma=0.0, min_size=100), truth)
    # with the default pre-smoothing the blurred edge pixels may join either side: the same 4 regions
    lab = seglab.segment(img, "felzenszwalb", scale=300, min_size=100)
    assert lab.max() == 3
    assert sum(np.bincount(truth[lab == k]).max() for k in range(4)) / lab.size > 0.95
    # a huge scale merges everything, a tiny one keeps many regions
    assert seglab.segment(img, "felzenszwalb", scale=1e7).max() == 0
    assert seglab.segment(img, "felzenszwalb", scale=0.0, sigma=0.0, min_size=1).max() > 100


def test_slic_grid_count_connectivity_and_edges(rng):
    img, truth = pieces(rng, (60, 90))
    for zero in (False, True):
        lab = seglab.segment(img, "slic", n_segments=54, slic_zero=zero)
        n = lab.max() + 1
        assert 30 <= n <= 70
        assert connected_components(lab)[1] == n          # every superpixel is one connected piece
        # superpixels do not straddle the colour edges: each lies (almost) inside one true region
        purity = sum(np.bincount(truth[lab == k]).max() for k in range(n)) / lab.size
        assert purity > 0.98
    assert not np.array_equal(seglab.segment(img, "slic", slic_zero=True), seglab.segment(img, "slic"))


def test_slic_on_a_photo_matches_the_requested_count_like_skimage():
    crop = skimage.data.astronaut()[::2, ::2]
    img = to_float_image(crop)
    for n_segments, zero in ((200, False), (100, False), (100, True)):
        ours = seglab.segment(crop, "slic", n_segments=n_segments, compactness=10, slic_zero=zero)
        ref = sk_slic(img, n_segments=n_segments, compactness=10, slic_zero=zero, start_label=0)
        # same search window (4S x 4S) and connectivity threshold (min_size_factor 0.5) as scikit-image:
        # about as many superpixels, near the request
        assert 0.45 * n_segments <= ours.max() + 1 <= 1.25 * n_segments
        assert 0.8 <= (ours.max() + 1) / (ref.max() + 1) <= 1.25
        assert connected_components(ours)[1] == ours.max() + 1


def test_slic_assignment_is_the_windowed_nearest_centre(rng):
    from seglab.classical.superpixels import _slic_assign

    h, w, step = 37, 53, 9.0
    feat = (rng.random((3, h, w)) * [[[100.0]], [[60.0]], [[60.0]]]).astype(np.float32)
    k = 30
    centers = np.column_stack([rng.random(k) * h, rng.random(k) * w, rng.random((k, 3)) * [100, 60, 60]])
    inv_m2 = 1.0 / rng.uniform(5, 20, k) ** 2
    yy, xx = np.mgrid[:h, :w]
    for window in (1.0, 2.0):
        win = window * step
        dist = np.empty((h, w), np.float32)
        labels = np.full((h, w), -1, np.int32)
        _slic_assign(feat, centers, inv_m2, 1 / step ** 2, win, dist, labels)
        # definition: D = d_lab^2 / m_k^2 + d_xy^2 / S^2, minimised over the centres whose window holds the pixel
        d = np.full((k, h, w), np.inf)
        for j, (cy, cx) in enumerate(centers[:, :2]):
            inside = ((yy >= int(cy - win)) & (yy <= int(cy + win)) & (xx >= int(cx - win)) & (xx <= int(cx + win)))
            dj = ((feat - centers[j, 2:, None, None]) ** 2).sum(0) * inv_m2[j] + ((yy - cy) ** 2 + (xx - cx) ** 2) / step ** 2
            d[j][inside] = dj[inside]
        best = d.argmin(0)
        covered = np.isfinite(d.min(0))
        assert (labels[~covered] == -1).all()
        assert (labels[covered] == best[covered]).mean() > 0.999
        assert np.allclose(dist[covered], d.min(0)[covered], rtol=1e-4)


def test_slic_small_pieces_join_the_neighbour_above_their_first_pixel():
    from seglab.classical.superpixels import _absorb_small

    lab = np.zeros((6, 8), int)
    lab[:, 4:] = 1
    lab[3:, :4] = 2
    lab[5, :7] = 2
    lab[2:4, 2:5] = 3  # small piece: its first pixel (2, 2) has piece 0 above it (and to the left)
    lab[5, 7] = 4      # small piece: piece 1 above it, piece 2 to its left -> the one above (Achanta)
    comp, n = connected_components(lab)
    out = _absorb_small(comp, n, 8)
    assert out.max() == 2
    assert (out[lab == 3] == out[0, 0]).all() and out[5, 7] == out[0, 7]
    assert connected_components(out)[1] == 3


def isoperimetric(lab):
    """Mean over labels of 4 pi area / perimeter^2 (perimeter: pixel edges to other labels or the border)."""
    p = np.pad(lab, 1, constant_values=-1)
    inner = p[1:-1, 1:-1]
    edges = np.zeros(lab.max() + 1)
    for other in (p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]):
        np.add.at(edges, inner[inner != other], 1)
    return np.mean(4 * np.pi * np.bincount(lab.ravel()) / edges ** 2)


def test_compactness_makes_superpixels_rounder(rng):
    from scipy import ndimage as ndi

    img = ndi.gaussian_filter(rng.random((80, 80, 3)), (3, 3, 0))
    img = (img - img.min()) / (img.max() - img.min())
    loose = seglab.segment(img, "slic", n_segments=64, compactness=1.0)
    tight = seglab.segment(img, "slic", n_segments=64, compactness=100.0)
    assert isoperimetric(tight) > 1.5 * isoperimetric(loose)
    assert tight.max() + 1 == 64  # space dominates: the 8 x 8 grid cells
    for lab, m in ((loose, 1.0), (tight, 100.0)):  # as round as scikit-image's
        ref = sk_slic(img, n_segments=64, compactness=m, start_label=0)
        assert abs(isoperimetric(lab) - isoperimetric(ref)) < 0.1


def test_merge_small_regions_and_radix_sort(rng):
    lab = np.zeros((6, 6), int)
    lab[:, 3:] = 1
    lab[2, 1] = 2  # a one-pixel region inside region 0
    feats = np.where(lab == 1, 1.0, 0.0)[..., None]
    feats[2, 1] = 0.9  # more like region 1, but only region 0 touches it
    out = merge_small_regions(connected_components(lab)[0], feats, 2)
    assert out.max() == 1 and out[2, 1] == out[0, 0]
    w = rng.integers(0, 50, 1000).astype(np.float32) / 4
    assert np.array_equal(stable_argsort_nonneg(w), np.argsort(w, kind="stable"))


@pytest.mark.parametrize("method", ["slic", "felzenszwalb"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (7, 7), (7, 7, 3)])
def test_tiny_and_constant_images(method, shape, rng):
    for img in (np.zeros(shape), rng.random(shape)):
        lab = seglab.segment(img, method)
        assert lab.dtype == np.int32 and lab.shape == shape[:2] and lab.min() == 0
    assert seglab.segment(np.full((30, 30, 3), 0.5), "felzenszwalb").max() == 0


def test_deterministic(rng):
    img = rng.random((40, 40, 3))
    for m in ("slic", "felzenszwalb"):
        assert np.array_equal(seglab.segment(img, m), seglab.segment(img.copy(), m))


@pytest.mark.parametrize("method,params", [
    ("slic", {"n_segments": 0}), ("slic", {"compactness": 0}), ("slic", {"slic_zero": "yes"}),
    ("slic", {"min_size_factor": 2.0}), ("slic", {"window": 0.5}), ("felzenszwalb", {"scale": -1}), ("felzenszwalb", {"sigma": -0.1}),
    ("felzenszwalb", {"min_size": 0}), ("felzenszwalb", {"nope": 1}),
])
def test_bad_parameters_raise(method, params):
    with pytest.raises(ParameterError):
        seglab.segment(np.zeros((5, 5)), method, **params)


def _flood_fill_reference(lab):
    """4-connected components of equal values by breadth-first search, numbered in raster order."""
    from collections import deque

    h, w = lab.shape
    out = np.full((h, w), -1)
    n = 0
    for r0 in range(h):
        for c0 in range(w):
            if out[r0, c0] >= 0:
                continue
            out[r0, c0] = n
            todo = deque([(r0, c0)])
            while todo:
                r, c = todo.popleft()
                for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                    if 0 <= rr < h and 0 <= cc < w and out[rr, cc] < 0 and lab[rr, cc] == lab[r, c]:
                        out[rr, cc] = n
                        todo.append((rr, cc))
            n += 1
    return out, n


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_])
def test_connected_components_equal_a_flood_fill(rng, dtype):
    """Every value is a region (0 and negative values too), numbered 0.. in raster order, any dtype;
    values at both ends of the dtype's range included."""
    lab = rng.integers(0, 3, (23, 31))
    if dtype is np.bool_:
        lab = lab > 0
    else:
        info = np.iinfo(dtype)
        lab = np.choose(lab, [info.min, 0, info.max]).astype(dtype)
    ref, n = _flood_fill_reference(lab)
    out, m = connected_components(lab)
    assert m == n and out.dtype == np.int32
    np.testing.assert_array_equal(out, ref)
