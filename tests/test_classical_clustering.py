import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture

import seglab
from seglab.classical.clustering import _lloyd, gmm_map, kmeans_fit, meanshift_filter, pixel_features
from seglab.errors import ParameterError

COLOURS = np.array([[0.1, 0.1, 0.1], [0.8, 0.2, 0.2], [0.2, 0.3, 0.9], [0.9, 0.9, 0.6]])


def blobs(rng, shape=(40, 60), noise=0.03):
    """Three colour regions (a disc on two half planes) with noise, and their labels in brightness order."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    truth = (xx >= shape[1] // 2).astype(int)
    truth[(yy - 20) ** 2 + (xx - 30) ** 2 < 100] = 2
    img = COLOURS[[0, 1, 3]][truth] + rng.normal(0, noise, shape + (3,))
    return np.clip(img, 0, 1), truth


def same_partition(a, b):
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))


def test_kmeans_recovers_blobs_in_brightness_order(rng):
    img, truth = blobs(rng)
    for features in ("rgb", "lab", "intensity"):
        lab = seglab.segment(img, "kmeans", k=3, features=features)
        assert np.array_equal(lab, truth)  # classes ordered dark (0) to bright (2)


def test_lloyd_with_bounds_equals_sklearn_lloyd(rng):
    x = np.concatenate([rng.normal(m, 0.3, (300, 2)) for m in ((0, 0), (2, 0), (0, 2), (2, 2), (1, 1))])
    init = x[rng.choice(len(x), 5, replace=False)]
    labels, inertia = _lloyd(x, init.copy(), 300, 0.0)
    ref = KMeans(5, init=init, n_init=1, algorithm="lloyd", tol=0.0, max_iter=300).fit(x)
    assert np.array_equal(labels, ref.labels_)
    assert np.isclose(inertia, ref.inertia_)
    # the seeding is k-means++-like: on well separated data the result reaches the sklearn optimum
    _, _, ours = kmeans_fit(x, 5, np.random.default_rng(1))
    best = KMeans(5, n_init=10, random_state=0).fit(x).inertia_
    assert ours <= best * 1.001


def test_kmeans_xy_features_split_same_colour_far_apart():
    img = np.zeros((20, 60))
    img[:, 20:40] = 1.0
    assert len(np.unique(seglab.segment(img, "kmeans", k=2)[:, [5, 55]])) == 1
    lab = seglab.segment(img, "kmeans", k=3, xy_weight=10.0, features="intensity")
    assert lab[10, 5] != lab[10, 55]


def test_gmm_map_equals_sklearn_predict(rng):
    x = np.concatenate([rng.normal(m, s, (400, 3)) for m, s in ((0, 0.5), (3, 1.0), (6, 0.3))])
    for cov in ("full", "tied", "diag", "spherical"):
        model = GaussianMixture(3, covariance_type=cov, random_state=0).fit(x)
        ours = gmm_map(x, model.weights_, model.means_, model.precisions_cholesky_, cov)
        assert np.array_equal(ours, model.predict(x))


def test_gmm_segments_blobs_and_is_deterministic(rng):
    img, truth = blobs(rng)
    lab = seglab.segment(img, "gmm", k=3, seed=3)
    assert (lab == truth).mean() > 0.99
    assert np.array_equal(lab, seglab.segment(img, "gmm", k=3, seed=3))
    # fitting on a sample of the pixels, given the seed, is deterministic too
    a = seglab.segment(img, "gmm", k=3, max_samples=200, seed=5)
    assert np.array_equal(a, seglab.segment(img, "gmm", k=3, max_samples=200, seed=5))


def test_meanshift_recovers_pieces_and_scale(rng):
    img, truth = blobs(rng, noise=0.02)
    lab = seglab.segment(img, "meanshift", hs=5, hr=8.0, min_size=20)
    assert same_partition(lab, truth)
    # the filter sends each pixel to (near) the Lab colour of its region
    modes = meanshift_filter(img, 5, 8.0)
    from seglab.classical.superpixels import lab_features

    true_lab = lab_features(COLOURS[[0, 1, 3]].reshape(1, 3, 3).astype(np.float32))[0]
    assert np.abs(modes[truth == 1] - true_lab[1]).max() < 3.0
    # a larger range bandwidth merges more; min_size bounds every region from below
    noisy = rng.random((40, 40, 3))
    n = [seglab.segment(noisy, "meanshift", hr=h, min_size=1).max() for h in (2.0, 10.0, 60.0)]
    assert n[0] > n[1] > n[2]
    sizes = np.bincount(seglab.segment(noisy, "meanshift", hr=5.0, min_size=30).ravel())
    assert sizes.min() >= 30


def test_pixel_features():
    img = np.zeros((2, 3, 3))
    img[..., 0] = 1.0
    assert pixel_features(img, "rgb").shape == (6, 3)
    assert np.allclose(pixel_features(img, "intensity"), 0.299)
    f = pixel_features(img, "lab", xy_weight=2.0)
    assert f.shape == (6, 5) and np.isclose(f[:, 0], 0.5324, atol=0.01).all()  # L* of pure red ~53
    assert np.allclose(f[-1, 3:], [1 * 2 / 3, 2 * 2 / 3])


@pytest.mark.parametrize("method", ["kmeans", "gmm", "meanshift"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (7, 7), (7, 7, 3)])
def test_tiny_and_constant_images(method, shape, rng):
    for img in (np.zeros(shape), np.full(shape, 0.3), rng.random(shape)):
        lab = seglab.segment(img, method)
        assert lab.dtype == np.int32 and lab.shape == shape[:2] and lab.min() == 0
    assert seglab.segment(np.full(shape, 0.3), method).max() == 0


@pytest.mark.parametrize("method", ["kmeans", "gmm", "meanshift"])
def test_deterministic_given_seed(method, rng):
    img = rng.random((25, 30, 3))
    assert np.array_equal(seglab.segment(img, method), seglab.segment(img.copy(), method))


@pytest.mark.parametrize("method,params", [
    ("kmeans", {"k": 0}), ("kmeans", {"features": "hsv"}), ("kmeans", {"seed": -1}), ("kmeans", {"xy_weight": -1}),
    ("gmm", {"covariance": "banded"}), ("gmm", {"k": 0}), ("gmm", {"max_samples": 1}),
    ("meanshift", {"hs": 0}), ("meanshift", {"hr": 0}), ("meanshift", {"min_size": 0}),
])
def test_bad_parameters_raise(method, params):
    with pytest.raises(ParameterError):
        seglab.segment(np.zeros((5, 5)), method, **params)


def test_gmm_neg_log_density_equals_sklearn_score_samples(rng):
    from seglab.classical.clustering import gmm_neg_log_density

    x = np.concatenate([rng.normal(m, s, (400, 3)) for m, s in ((0, 0.5), (3, 1.0), (6, 0.3))])
    for cov in ("full", "tied", "diag", "spherical"):
        model = GaussianMixture(3, covariance_type=cov, random_state=0).fit(x)
        ours = gmm_neg_log_density(x, model.weights_, model.means_, model.precisions_cholesky_, cov)
        np.testing.assert_allclose(ours, -model.score_samples(x), rtol=0, atol=1e-10)
