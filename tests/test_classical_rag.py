"""RAG merging and its hierarchy: cut semantics, nesting, ucm2, agreement with scikit-image, bad input."""
import numpy as np
import pytest
from skimage import graph
from skimage.measure import label as cc_label

import seglab
from seglab.classical.rag import Hierarchy, over_segmentation, rag_hierarchy
from seglab.errors import ParameterError, SeglabError


def _same_partition(a, b):
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))


def _refines(fine, coarse):
    """Every region of ``fine`` lies inside one region of ``coarse``."""
    pairs = np.unique(np.stack([fine.ravel(), coarse.ravel()]), axis=1)
    return pairs.shape[1] == len(np.unique(fine))


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(0)
    img = np.zeros((60, 80, 3))
    img[:, :40] = (0.8, 0.2, 0.2)
    img[:, 40:] = (0.2, 0.3, 0.8)
    img[15:45, 20:60] = (0.3, 0.8, 0.3)
    return np.clip(img + rng.normal(0, 0.05, img.shape), 0, 1)


@pytest.mark.parametrize("weight", ["color", "boundary"])
def test_hierarchy_cuts(scene, weight):
    blocks = (np.arange(60)[:, None] // 5) * 16 + np.arange(80)[None] // 5   # 5 x 5 blocks, aligned with truth
    h = rag_hierarchy(scene, weight=weight, base_labels=blocks)
    assert isinstance(h, Hierarchy) and h.base.dtype == np.int32
    n = h.n_base
    assert h.merges.shape == (n - 1, 2) and np.all(np.diff(h.heights) >= 0) and h.heights[0] > 0
    assert _same_partition(h.cut(0), h.base)
    assert np.all(h.cut(np.inf) == 0)
    thresholds = np.quantile(h.heights, [0.1, 0.3, 0.5, 0.7, 0.9])
    cuts = [h.cut(t) for t in thresholds]
    for fine, coarse in zip(cuts, cuts[1:]):
        assert _refines(fine, coarse)
    for t, c in zip(thresholds, cuts):
        assert c.max() + 1 == n - np.searchsorted(h.heights, t, side="right")
        assert c.dtype == np.int32 and c[0, 0] == 0
    assert h.cut_n(3).max() == 2 and _same_partition(h.cut_n(n), h.base)
    # the three true regions are the 3-region cut (the heaviest merges cross the true boundaries)
    truth = np.zeros(scene.shape[:2], int)
    truth[:, 40:] = 1
    truth[15:45, 20:60] = 2
    assert _same_partition(h.cut_n(3), truth)


@pytest.mark.parametrize("weight", ["color", "boundary"])
def test_ucm2_regions_are_the_cuts(scene, weight):
    h = rag_hierarchy(scene, weight=weight, n_segments=60)
    u2 = h.ucm2()
    assert u2.shape == (2 * 60 + 1, 2 * 80 + 1)
    assert np.all(u2[1::2, 1::2] == 0) and u2.max() == h.heights[-1]
    np.testing.assert_array_equal(h.ucm(), u2[2::2, 2::2])
    for t in np.quantile(h.heights, [0.2, 0.5, 0.8]):
        regions = cc_label(u2 <= t, connectivity=2, background=0)[1::2, 1::2]  # as the BSDS code does
        assert _same_partition(regions, h.cut(t))


def test_flat_results_equal_scikit_image(scene, peers):
    base = over_segmentation(scene, 80)
    for t in (0.05, 0.15, 0.3):
        ours = seglab.segment(scene, "rag_merge", threshold=t, mode="threshold", base_labels=base)
        theirs = graph.cut_threshold(base, graph.rag_mean_color(scene, base), t)
        assert _same_partition(ours, theirs)
        assert _same_partition(ours, peers.sk_rag_merge(scene, threshold=t, mode="threshold", base_labels=base))
        # merge_hierarchical with the mean-colour callbacks, as the benchmark's peer runs it
        theirs = peers.sk_rag_merge(scene, threshold=t, base_labels=base)
        ours = seglab.segment(scene, "rag_merge", threshold=t, base_labels=base)
        assert _same_partition(ours, theirs)
        assert _same_partition(ours, rag_hierarchy(scene, base_labels=base).cut(t))


def test_boundary_weight_is_mean_gradient_along_the_boundary():
    img = np.zeros((8, 8))
    img[:, 4:] = 1.0
    base = np.repeat(np.arange(4), 2)[None].repeat(8, 0)     # four vertical strips of width 2
    h = rag_hierarchy(img, base_labels=base, weight="boundary")
    # strips 1|2 are split by the step: Sobel/8 gives 0.5 on both sides of it, elsewhere 0
    assert h.heights[-1] == pytest.approx(0.5) and np.all(h.heights[:-1] == 0)
    assert _same_partition(h.cut(0.25), (base >= 2).astype(int))


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (5, 7, 3)])
@pytest.mark.parametrize("weight", ["color", "boundary"])
def test_tiny_and_constant_images(shape, weight):
    rng = np.random.default_rng(0)
    for img in (np.full(shape, 0.5), rng.random(shape)):
        for mode in ("hierarchical", "threshold"):
            out = seglab.segment(img, "rag_merge", weight=weight, mode=mode, n_segments=4)
            assert out.shape == shape[:2] and out.dtype == np.int32 and out.min() == 0
        h = rag_hierarchy(img, weight=weight, n_segments=4)
        assert np.all(h.cut(np.inf) == 0) and h.ucm2().shape == (2 * shape[0] + 1, 2 * shape[1] + 1)
    assert np.all(seglab.segment(np.full(shape, 0.5), "rag_merge", weight=weight) == 0)


def test_bad_parameters():
    img = np.zeros((8, 8))
    with pytest.raises(ParameterError, match="weight"):
        seglab.segment(img, "rag_merge", weight="texture")
    with pytest.raises(ParameterError, match="mode"):
        seglab.segment(img, "rag_merge", mode="spectral")
    with pytest.raises(ParameterError, match="threshold"):
        seglab.segment(img, "rag_merge", threshold=-0.1)
    with pytest.raises(SeglabError, match="base_labels"):
        seglab.segment(img, "rag_merge", base_labels=np.zeros((4, 4), int))
