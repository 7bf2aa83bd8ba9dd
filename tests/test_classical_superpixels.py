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
    ours = seglab.segment(crop, "slic", n_segments=200, compactness=10)
    ref = sk_slic(to_float_image(crop), n_segments=200, compactness=10, start_label=0)
    # Same connectivity rule as scikit-image (min_size_factor 0.5): a count of the same order, near the request.
    assert 130 <= ours.max() + 1 <= 250 and 0.8 <= (ours.max() + 1) / (ref.max() + 1) <= 1.4
    assert connected_components(ours)[1] == ours.max() + 1


def test_compactness_makes_superpixels_rounder(rng):
    from scipy import ndimage as ndi

    img = ndi.gaussian_filter(rng.random((80, 80, 3)), (3, 3, 0))
    img = (img - img.min()) / (img.max() - img.min())
    perimeter = lambda lab: (np.diff(lab, axis=0) != 0).sum() + (np.diff(lab, axis=1) != 0).sum()
    loose = seglab.segment(img, "slic", n_segments=64, compactness=1.0)
    tight = seglab.segment(img, "slic", n_segments=64, compactness=100.0)
    assert perimeter(tight) < 0.8 * perimeter(loose)


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
    ("slic", {"min_size_factor": 2.0}), ("felzenszwalb", {"scale": -1}), ("felzenszwalb", {"sigma": -0.1}),
    ("felzenszwalb", {"min_size": 0}), ("felzenszwalb", {"nope": 1}),
])
def test_bad_parameters_raise(method, params):
    with pytest.raises(ParameterError):
        seglab.segment(np.zeros((5, 5)), method, **params)
