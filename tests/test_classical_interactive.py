"""Graph cut (and our max-flow), GrabCut, random walker, Chan-Vese: definitions, peers, bad input."""
import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import maximum_flow
from skimage.segmentation import chan_vese as sk_chan_vese
from skimage.segmentation import random_walker as sk_random_walker

import seglab
from seglab.classical._maxflow import maxflow
from seglab.classical.interactive import chan_vese_segment, default_box, graph_cut_terms
from seglab.errors import ParameterError, SeglabError

METHODS = ["graph_cut", "grabcut", "random_walker", "chan_vese"]


def _cut_capacity(i, j, cij, cji, source, sink, side):
    return (source[~side].sum() + sink[side].sum() + cij[side[i] & ~side[j]].sum()
            + cji[side[j] & ~side[i]].sum())


def test_maxflow_on_a_hand_built_graph():
    # Cormen et al., Introduction to Algorithms, Fig. 26.1: s=v0, t=v5, max flow 23
    # inner nodes v1..v4 -> 0..3
    i = np.array([0, 1, 2, 1, 2, 3])          # v1->v3, v2->v1, v3->v2, v2->v4, v4->v3... (listed below)
    j = np.array([2, 0, 1, 3, 1, 2])
    cij = np.array([12, 4, 9, 14, 0, 7], float)   # v1->v3 12, v2->v1 4, v3->v2 9, v2->v4 14, v4->v3 7
    cji = np.zeros(6)
    source = np.array([16, 13, 0, 0], float)      # s->v1 16, s->v2 13
    sink = np.array([0, 0, 20, 4], float)         # v3->t 20, v4->t 4
    flow, side = maxflow(4, i, j, cij, cji, source, sink)
    assert flow == 23
    assert _cut_capacity(i, j, cij, cji, source, sink, side) == 23
    np.testing.assert_array_equal(side, [True, True, False, True])   # the cut {s, v1, v2, v4}


def test_maxflow_equals_scipy_and_the_cut_capacity_on_random_graphs():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 14))
        m = int(rng.integers(0, 40))
        i, j = rng.integers(0, n, m), rng.integers(0, n, m)
        i, j = i[i != j], j[i != j]
        cij, cji = rng.integers(0, 9, len(i)).astype(float), rng.integers(0, 9, len(i)).astype(float)
        source = rng.integers(0, 9, n) * (rng.random(n) < 0.5)
        sink = rng.integers(0, 9, n) * (rng.random(n) < 0.5)
        flow, side = maxflow(n, i, j, cij, cji, source, sink)
        rows = np.concatenate([i, j, np.full(n, n), np.arange(n)])
        cols = np.concatenate([j, i, np.arange(n), np.full(n, n + 1)])
        caps = np.concatenate([cij, cji, source, sink]).astype(np.int32)
        ref = maximum_flow(sp.coo_matrix((caps, (rows, cols)), shape=(n + 2, n + 2)).tocsr(), n, n + 1)
        assert flow == ref.flow_value
        assert _cut_capacity(i, j, cij, cji, source, sink, side) == flow


@pytest.mark.parametrize("model", ["gmm", "histogram"])
def test_graph_cut_is_the_brute_force_minimum_on_a_tiny_image(model):
    rng = np.random.default_rng(1)
    img = rng.random((3, 4))
    seeds = np.zeros((3, 4), int)
    seeds[0, 0] = 1
    seeds[0, 1] = 1
    seeds[2, 3] = 2
    seeds[2, 2] = 2
    labels = seglab.segment(img, "graph_cut", seeds=seeds, model=model, lam=2.0, connectivity=8)
    i, j, w, source, sink = graph_cut_terms(img, seeds, lam=2.0, model=model, connectivity=8)

    def energy(lab):
        fg = lab.astype(bool)
        return sink[fg].sum() + source[~fg].sum() + w[fg[i] != fg[j]].sum()

    best = min(energy(np.array(bits)) for bits in itertools.product((0, 1), repeat=12))
    assert energy(labels.ravel()) == pytest.approx(best, rel=1e-12)
    assert labels[0, 0] == 1 and labels[2, 3] == 0


def _disc_image(noise=0.05, seed=0):
    yy, xx = np.mgrid[:60, :80]
    truth = ((yy - 30) ** 2 + (xx - 40) ** 2 < 18 ** 2).astype(np.int32)
    img = np.where(truth[..., None], [0.8, 0.3, 0.2], [0.2, 0.4, 0.7])
    img = img + np.random.default_rng(seed).normal(0, noise, img.shape)
    return np.clip(img, 0, 1), truth


@pytest.mark.parametrize("model", ["gmm", "histogram"])
def test_graph_cut_recovers_an_object_from_seeds_or_a_box(model):
    img, truth = _disc_image()
    seeds = np.zeros(truth.shape, int)
    seeds[28:32, 38:42] = 1
    seeds[:3] = 2
    out = seglab.segment(img, "graph_cut", seeds=seeds, model=model)
    assert out.dtype == np.int32 and (out != truth).mean() < 0.005
    out = seglab.segment(img, "graph_cut", box=(8, 18, 52, 62), model=model)
    assert (out != truth).mean() < 0.005
    assert np.all(out[:8] == 0)


def test_grabcut_recovers_an_object_and_is_deterministic():
    img, truth = _disc_image(noise=0.08)
    a = seglab.segment(img, "grabcut", box=(8, 18, 52, 62), seed=1)
    b = seglab.segment(img, "grabcut", box=(8, 18, 52, 62), seed=1)
    np.testing.assert_array_equal(a, b)
    assert (a != truth).mean() < 0.01
    seeds = np.zeros(truth.shape, int)
    seeds[25:35, 35:45] = 1
    seeds[:, :5] = 2
    assert (seglab.segment(img, "grabcut", seeds=seeds) != truth).mean() < 0.01
    assert (seglab.segment(img, "grabcut") != truth).mean() < 0.01          # default box


def test_random_walker_equals_scikit_image():
    img, truth = _disc_image(noise=0.1)
    gray = img[..., 0]
    seeds = np.zeros(truth.shape, int)
    seeds[28:32, 38:42] = 1
    seeds[:3] = 2
    seeds[-3:, -3:] = 3
    ours = seglab.segment(img, "random_walker", seeds=seeds, beta=200)
    np.testing.assert_array_equal(ours, sk_random_walker(img, seeds, beta=200, mode="bf", channel_axis=-1))
    theirs_cg = sk_random_walker(img, seeds, beta=200, mode="cg_j", tol=1e-6, channel_axis=-1)
    assert (ours == theirs_cg).mean() > 0.999
    binary = np.where(seeds == 3, 2, seeds)
    ours = seglab.segment(gray, "random_walker", seeds=binary)
    theirs = sk_random_walker(gray, binary, beta=130, mode="bf")
    np.testing.assert_array_equal(ours, np.where(theirs == 2, 0, theirs))   # binary convention: bg -> 0
    assert (ours != truth).mean() < 0.02
    assert (seglab.segment(img, "random_walker") != truth).mean() < 0.05     # default seeds
    # probabilities: the walker's definition on a 1 x 3 chain with equal weights is linear interpolation
    from seglab.classical.interactive import walker_probabilities

    p = walker_probabilities(np.zeros((1, 5)), np.array([[1, 0, 0, 0, 2]]))
    np.testing.assert_allclose(p[0, 0], [1, 0.75, 0.5, 0.25, 0], atol=1e-12)


@pytest.mark.parametrize("init", ["checkerboard", "disk", "small disk"])
def test_chan_vese_equals_scikit_image(init):
    import skimage.data
    from skimage.transform import rescale

    gray = rescale(skimage.data.camera(), 0.25, anti_aliasing=True)
    for mu in (0.1, 0.25):
        ours = seglab.segment(gray, "chan_vese", mu=mu, max_iter=60, init=init)
        theirs = sk_chan_vese(gray, mu=mu, max_num_iter=60, init_level_set=init)
        assert (ours == theirs).mean() > 0.9999


def test_chan_vese_colour_and_initial_mask():
    img, truth = _disc_image(noise=0.1)
    seg = seglab.segment(img, "chan_vese")
    assert min((seg != truth).mean(), (seg == truth).mean()) < 0.01    # two phases, either sign
    mask = np.zeros(truth.shape, int)
    mask[20:40, 30:50] = 1
    seg = seglab.segment(img, "chan_vese", init_mask=mask)
    assert (seg != truth).mean() < 0.01                                   # inside stays inside
    _, phi, iters = chan_vese_segment(img, init=mask, max_iter=7, return_phi=True)
    assert phi.shape == truth.shape and iters == 7
    _, _, iters = chan_vese_segment(np.full((9, 9), 0.5), return_phi=True)
    assert iters < 500                                                    # stops once phi no longer moves


def test_chan_vese_colour_data_term_is_the_channel_mean(rng):
    """Chan, Sandberg & Vese (2000): the vector data term averages the channels, so a colour image with
    three equal channels evolves exactly as its gray image (a sum would triple the data weight)."""
    gray = np.clip(_disc_image(noise=0.2)[0].mean(axis=2) + 0.1 * rng.standard_normal((60, 80)), 0, 1)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    _, phi_gray, it_gray = chan_vese_segment(gray, max_iter=40, return_phi=True)
    _, phi_rgb, it_rgb = chan_vese_segment(rgb, max_iter=40, return_phi=True)
    assert it_gray == it_rgb and np.allclose(phi_gray, phi_rgb, rtol=0, atol=1e-12)
    _, phi_3x, _ = chan_vese_segment(gray, lambda1=3.0, lambda2=3.0, max_iter=40, return_phi=True)
    assert not np.allclose(phi_rgb, phi_3x, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (2, 2, 3), (3, 3), (12, 5, 3)])
def test_tiny_and_constant_images(method, shape):
    rng = np.random.default_rng(0)
    for img in (np.full(shape, 0.5), rng.random(shape)):
        out = seglab.segment(img, method)
        assert out.shape == shape[:2] and out.dtype == np.int32 and set(np.unique(out)) <= {0, 1}


def test_default_box():
    assert default_box((1, 1)) == (0, 0, 1, 1)
    assert default_box((3, 40)) == (1, 4, 2, 36)
    assert default_box((321, 481)) == (32, 48, 289, 433)


def test_bad_parameters():
    img = np.zeros((8, 8))
    bad_seeds = np.zeros((8, 8), int)
    bad_seeds[0, 0] = 3
    with pytest.raises(ParameterError, match="seeds"):
        seglab.segment(img, "graph_cut", seeds=bad_seeds)
    with pytest.raises(ParameterError, match="seeds"):
        seglab.segment(img, "grabcut", seeds=-np.ones((8, 8), int))
    with pytest.raises(ParameterError, match="seeds"):
        seglab.segment(img, "random_walker", seeds=np.zeros((8, 8), int))
    for method in ("graph_cut", "random_walker", "grabcut"):
        with pytest.raises(SeglabError, match="seeds"):
            seglab.segment(img, method, seeds=np.ones((4, 8), int))
    with pytest.raises(SeglabError, match="init_mask"):
        seglab.segment(img, "chan_vese", init_mask=np.ones((8, 4), int))
    for box in ((0, 0, 9, 8), (4, 4, 4, 6), (1, 2, 3)):
        with pytest.raises(ParameterError, match="box"):
            seglab.segment(img, "graph_cut", box=box)
    with pytest.raises(ParameterError, match="model"):
        seglab.segment(img, "graph_cut", model="kde")
    with pytest.raises(ParameterError, match="init"):
        seglab.segment(img, "chan_vese", init="square")
    with pytest.raises(ParameterError, match="lam"):
        seglab.segment(img, "graph_cut", lam=-1)


@pytest.mark.parametrize("connectivity", [4, 8])
def test_graph_cut_grid_path_reaches_the_max_flow_of_the_generic_graph(connectivity):
    img = np.random.default_rng(2).random((23, 31, 3))
    i, j, w, source, sink = graph_cut_terms(img, lam=3.0, connectivity=connectivity)
    flow, _ = maxflow(img.shape[0] * img.shape[1], i, j, w, w, source, sink)
    fg = seglab.segment(img, "graph_cut", lam=3.0, connectivity=connectivity).ravel().astype(bool)
    energy = sink[fg].sum() + source[~fg].sum() + w[fg[i] != fg[j]].sum()
    assert energy == pytest.approx(flow, rel=1e-9)


def test_gaussian_mixture_colour_model_equals_scikit_learn_at_convergence():
    from sklearn.mixture import GaussianMixture

    from seglab.classical.interactive import _gmm_nll

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0.2, 0.05, (1500, 3)), rng.normal(0.7, 0.1, (1500, 3))])
    ref = GaussianMixture(2, covariance_type="full", reg_covar=1e-4, tol=1e-12, max_iter=300, random_state=0)
    ref.fit(x)
    np.testing.assert_allclose(_gmm_nll(x[:200], x, 0, k=2, iters=80), -ref.score_samples(x[:200]), atol=1e-8)


def test_one_component_colour_model_is_the_fitted_gaussian(rng):
    """k = 1 (one distinct colour, or a single sample) is EM's closed form: the samples' mean and biased
    covariance plus the 1e-4 floor (to the 1e-10 that the EM adds to each component's count)."""
    from scipy.stats import multivariate_normal

    from seglab.classical.interactive import _gmm_nll

    x = rng.random((50, 3))
    for samples in (np.tile([[0.2, 0.5, 0.7]], (30, 1)), np.array([[0.1, 0.9, 0.3]])):
        cov = np.cov(samples.T, bias=True).reshape(3, 3) + 1e-4 * np.eye(3)
        ref = -multivariate_normal(samples.mean(0), cov).logpdf(x)
        np.testing.assert_allclose(_gmm_nll(x, samples, 0), ref, rtol=1e-8)
