"""Region growing and split-and-merge: definitions checked on synthetic images, bad input, tiny images."""
import numpy as np
import pytest
from scipy import ndimage as ndi

import seglab
from seglab.errors import ParameterError, SeglabError


def _pieces():
    """Piecewise-constant 40 x 56 image of five connected pieces (two share a value but do not touch)."""
    truth = np.zeros((40, 56), np.int32)
    truth[5:25, 8:30] = 1
    truth[28:, :] = 2
    truth[0:20, 40:] = 3
    truth[30:38, 45:52] = 4          # inside piece 2, same value as piece 1 but not adjacent to it
    values = np.array([0.1, 0.6, 0.35, 0.9, 0.6])
    return values[truth], truth


def _same_partition(a, b):
    """True when label maps a and b induce the same partition (labels may be renumbered)."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))


def test_region_growing_fills_exactly_the_connected_homogeneous_region(rng):
    img, truth = _pieces()
    img = img + rng.uniform(-0.02, 0.02, img.shape)         # homogeneous within 0.04
    labels = seglab.segment(img, "region_growing", points=[(10, 15)], threshold=0.1)
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels == 1, truth == 1)   # piece 4 has the same value but is not connected
    assert set(np.unique(labels)) == {0, 1}


def test_region_growing_seed_labels_are_kept_and_compete(rng):
    img, truth = _pieces()
    seeds = np.zeros(truth.shape, np.int32)
    seeds[2, 2] = 2 ** 30                                   # any label value is kept
    seeds[35, 3] = 3
    labels = seglab.segment(img, "region_growing", seeds=seeds, threshold=0.05)
    np.testing.assert_array_equal(labels == 2 ** 30, truth == 0)
    np.testing.assert_array_equal(labels == 3, truth == 2)
    # a huge threshold lets both seeds grow over everything: every pixel is taken, each region connected
    labels = seglab.segment(img, "region_growing", seeds=seeds, threshold=2.0)
    assert set(np.unique(labels)) == {3, 2 ** 30}
    for v in (3, 2 ** 30):
        assert ndi.label(labels == v)[1] == 1


def test_region_growing_automatic_recovers_pieces_and_is_deterministic(rng):
    img, truth = _pieces()
    labels = seglab.segment(img, "region_growing", threshold=0.05, min_size=0)
    assert _same_partition(labels, truth)
    col = np.stack([img, 1 - img, img * 0.5], axis=-1)
    a = seglab.segment(col + rng.normal(0, 0.02, col.shape).clip(-0.5, 0.5), "region_growing")
    b = seglab.segment(col + np.random.default_rng(0).normal(0, 0.02, col.shape).clip(-0.5, 0.5), "region_growing")
    np.testing.assert_array_equal(a, b)
    assert a.min() == 0 and np.all(np.bincount(a.ravel()) >= 32)  # min_size merged the specks


def test_split_merge_recovers_pieces(rng):
    img, truth = _pieces()
    for predicate in ("std", "range"):
        labels = seglab.segment(img, "split_merge", threshold=0.02, predicate=predicate, min_size=0)
        assert _same_partition(labels, truth), predicate
    col = np.stack([img, img[::-1], 1 - img], axis=-1)
    colour_id = np.unique(col.reshape(-1, 3), axis=0, return_inverse=True)[1].reshape(truth.shape)
    labels = seglab.segment(col, "split_merge", threshold=0.01, min_size=0)
    assert _same_partition(labels, _cc(colour_id))   # the connected pieces of equal colour


def _cc(labels):
    """Connected components (4-connectivity) of each label value, numbered uniquely."""
    out = np.zeros(labels.shape, np.int64)
    n = 0
    for v in np.unique(labels):
        cc, k = ndi.label(labels == v)
        out[cc > 0] = cc[cc > 0] + n
        n += k
    return out


def test_split_merge_threshold_is_a_scale(rng):
    img = rng.random((64, 64))
    counts = [seglab.segment(img, "split_merge", threshold=t, min_size=0).max() + 1 for t in (0.05, 0.2, 0.35)]
    assert counts[0] > counts[1] > counts[2]
    assert seglab.segment(img, "split_merge", threshold=1.0).max() == 0


@pytest.mark.parametrize("method", ["region_growing", "split_merge"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (5, 7, 3), (1, 1, 3)])
def test_tiny_and_constant_images(method, shape, rng):
    const = seglab.segment(np.full(shape, 0.4), method)
    assert const.shape == shape[:2] and const.dtype == np.int32 and np.all(const == 0)
    noisy = seglab.segment(rng.random(shape), method, min_size=0)
    assert noisy.shape == shape[:2] and noisy.min() == 0


def test_bad_parameters():
    img = np.zeros((8, 8))
    with pytest.raises(ParameterError, match="threshold"):
        seglab.segment(img, "region_growing", threshold=-1)
    with pytest.raises(ParameterError, match="connectivity"):
        seglab.segment(img, "region_growing", connectivity=6)
    with pytest.raises(ParameterError, match="points"):
        seglab.segment(img, "region_growing", points=[(8, 0)])
    with pytest.raises(ParameterError, match="seeds"):
        seglab.segment(img, "region_growing", seeds=-np.ones((8, 8), int))
    with pytest.raises(SeglabError, match="seeds"):
        seglab.segment(img, "region_growing", seeds=np.ones((4, 8), int))
    with pytest.raises(ParameterError, match="predicate"):
        seglab.segment(img, "split_merge", predicate="entropy")
