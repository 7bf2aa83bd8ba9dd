import numpy as np
import pytest
from skimage.filters import threshold_local, threshold_multiotsu, threshold_otsu

import seglab
from seglab.classical.thresholding import histogram_valleys
from seglab.errors import ParameterError

METHODS = ["otsu", "multi_otsu", "histogram_modes", "adaptive_threshold"]


def three_level(rng, shape=(60, 80)):
    """Three flat gray levels plus a little noise: a histogram with three clear modes."""
    img = np.full(shape, 0.2)
    img[:, shape[1] // 3:] = 0.5
    img[:, 2 * shape[1] // 3:] = 0.8
    return np.clip(img + rng.normal(0, 0.03, shape), 0, 1)


def test_otsu_and_multi_otsu_use_skimage_thresholds(rng):
    img = three_level(rng).astype(np.float32)
    assert np.array_equal(seglab.segment(img, "otsu"), img > threshold_otsu(img))
    for x in (rng.random((40, 50)).astype(np.float32), rng.beta(2, 5, (30, 30)).astype(np.float32)):
        for nbins in (16, 256, 1000):
            assert np.array_equal(seglab.segment(x, "otsu", nbins=nbins), x > threshold_otsu(x, nbins=nbins))
    for k in (2, 3, 4):
        t = threshold_multiotsu(img, classes=k)
        expected = np.digitize(img, t.astype(np.float32), right=True)
        assert np.array_equal(seglab.segment(img, "multi_otsu", k=k), expected)
    # three levels: three classes, each a column band
    lab = seglab.segment(img, "multi_otsu", k=3)
    assert [np.bincount(lab[:, c]).argmax() for c in (5, 40, 75)] == [0, 1, 2]


def test_multi_otsu_with_fewer_levels_than_classes():
    img = np.array([[0.0, 0.5, 1.0]])
    assert seglab.segment(img, "multi_otsu", k=5).tolist() == [[0, 1, 2]]


def test_histogram_modes_finds_the_valleys(rng):
    img = three_level(rng)
    valleys = histogram_valleys(img, sigma=4.0, nbins=256)
    assert len(valleys) == 2
    assert 0.2 < valleys[0] < 0.5 < valleys[1] < 0.8
    lab = seglab.segment(img, "histogram_modes")
    truth = np.digitize(np.tile(np.arange(80), (60, 1)), [80 // 3, 2 * 80 // 3])
    assert (lab == truth).mean() > 0.99
    # heavy smoothing merges the modes: fewer classes
    assert seglab.segment(img, "histogram_modes", sigma=200.0).max() < 2


def test_adaptive_threshold_matches_skimage_threshold_local(rng):
    x = np.linspace(0, 1, 90)
    img = (0.6 * x[None, :] + 0.2 * (rng.random((70, 90)) > 0.7)).astype(np.float32)  # ramp + specks
    for ours, theirs in (("box", "mean"), ("gaussian", "gaussian")):
        for block, offset in ((11, 0.0), (35, 0.02), (41, 0.0)):  # 41: a kernel of 55 taps
            ref = img > threshold_local(img.astype(np.float64), block, method=theirs, offset=offset)
            got = seglab.segment(img, "adaptive_threshold", block_size=block, kernel=ours, offset=offset)
            assert (got == ref).mean() > 0.999
    # a global threshold cannot find the specks on the bright end of the ramp; the local one does
    lab = seglab.segment(img, "adaptive_threshold", block_size=15, offset=-0.05)
    specks = img - 0.6 * x[None, :] > 0.1
    assert lab[specks].mean() > 0.95 and lab[~specks].mean() < 0.05


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (7, 7), (7, 7, 3)])
def test_tiny_constant_and_colour_images(method, shape, rng):
    for img in (np.zeros(shape), np.full(shape, 0.7), rng.random(shape)):
        lab = seglab.segment(img, method)
        assert lab.dtype == np.int32 and lab.shape == shape[:2]
    assert seglab.segment(np.full(shape, 0.7), method).max() == 0


@pytest.mark.parametrize("method,params", [
    ("multi_otsu", {"k": 1}), ("multi_otsu", {"k": 2.5}), ("histogram_modes", {"sigma": -1}),
    ("histogram_modes", {"nbins": 1}), ("adaptive_threshold", {"block_size": 4}),
    ("adaptive_threshold", {"kernel": "median"}), ("adaptive_threshold", {"offset": 2.0}),
])
def test_bad_parameters_raise(method, params):
    with pytest.raises(ParameterError):
        seglab.segment(np.zeros((5, 5)), method, **params)


def test_gray_histogram_equals_numpy(rng):
    from seglab.classical.thresholding import gray_histogram

    for x in (rng.random((50, 70)).astype(np.float32), (rng.integers(0, 256, (40, 40)) / 255).astype(np.float32),
              np.linspace(0.1, 0.9, 1001, dtype=np.float32).reshape(7, 143)):
        for nbins in (2, 7, 256, 1000):
            counts, centers = gray_histogram(x, nbins)
            ref, edges = np.histogram(x, bins=nbins)
            assert np.array_equal(counts, ref) and np.allclose(centers, (edges[:-1] + edges[1:]) / 2)


def test_multi_otsu_dynamic_programme_is_optimal_and_fast(rng):
    """The DP thresholds give a between-class score no lower than scikit-image's exhaustive search, and
    k = 32 classes (hopeless for an exhaustive search) finishes at once."""
    import time

    from skimage.filters import threshold_multiotsu

    from seglab.classical.thresholding import gray_histogram, multi_otsu_thresholds

    def score(counts, centers, th):
        cls = np.digitize(centers, th, right=True)  # a threshold is the last bin of its class
        w = np.bincount(cls, counts, minlength=len(th) + 1)
        s = np.bincount(cls, counts * centers, minlength=len(th) + 1)
        return np.sum(np.divide(s * s, w, out=np.zeros_like(s), where=w > 0))

    for _ in range(10):
        x = np.clip(rng.normal(rng.random(4)[rng.integers(0, 4, (40, 50))], 0.07), 0, 1).astype(np.float32)
        for k in (2, 3, 4):
            counts, centers = gray_histogram(x, 64)
            ours = multi_otsu_thresholds(counts, centers, k)
            ref = threshold_multiotsu(classes=k, hist=(counts, centers))
            assert score(counts, centers, ours) >= score(counts, centers, ref) * (1 - 1e-12)
    t0 = time.perf_counter()
    lab = seglab.segment(rng.random((64, 64)), "multi_otsu", k=32)
    assert lab.max() == 31 and time.perf_counter() - t0 < 30


def test_gray_histogram_equals_numpy_histogram(rng):
    """The two-pass binning (arithmetic, edge comparisons only near edges) gives np.histogram's counts,
    including values on the edges (quantised data), narrow ranges far from 0 and both float types."""
    from seglab.classical.thresholding import gray_histogram

    cases = [rng.random(5000) ** 3, np.round(rng.random(5000) * 255) / 255, 100 + rng.random(3000) * 0.1,
             rng.random(3000) * 1e-3 - 0.5, np.linspace(0, 1, 1001)]
    for x in cases:
        for dtype in (np.float32, np.float64):
            xx = x.astype(dtype)
            for nbins in (2, 3, 16, 256, 1000):
                counts, centers = gray_histogram(xx, nbins)
                ref, edges = np.histogram(xx, bins=nbins)
                assert np.array_equal(counts, ref), (dtype, nbins)
                assert np.array_equal(centers, (edges[:-1] + edges[1:]) / 2)


def test_gray_methods_see_the_luminance(rng):
    """Methods registered gray=True get seglab.io.to_gray's luminance from segment(): otsu on a colour
    image is scikit-image's Otsu threshold of that luminance, and every one of them gives on the colour
    image what it gives on its luminance."""
    from seglab.io import to_gray

    rgb = rng.random((40, 50, 3)).astype(np.float32)
    gray = to_gray(rgb)
    assert np.array_equal(seglab.segment(rgb, "otsu"), gray > threshold_otsu(gray))
    gray_methods = [m.name for m in seglab.methods() if m.gray]
    assert set(gray_methods) == {"otsu", "multi_otsu", "histogram_modes", "adaptive_threshold"}
    for name in gray_methods:
        assert np.array_equal(seglab.segment(rgb, name), seglab.segment(gray, name)), name
    for m in seglab.methods():
        assert m.describe()["input"] == ("gray" if m.name in gray_methods else "gray or colour"), m.name


def test_gray_histogram_wide_and_int32_scratch(rng):
    """Bin counts above 2**15 use an int32 scratch; counts still equal numpy's."""
    from seglab.classical.thresholding import gray_histogram

    x = (rng.integers(0, 65536, 20000) / 65535).astype(np.float32)
    for nbins in (32767, 32768, 65536):
        counts, _ = gray_histogram(x, nbins)
        assert np.array_equal(counts, np.histogram(x, bins=nbins)[0]), nbins
