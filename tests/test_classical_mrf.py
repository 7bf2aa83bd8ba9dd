"""MRF segmentation: the energy each optimiser minimises, how the four variants differ, bad input."""
import itertools

import numpy as np
import pytest

import seglab
from seglab.classical.mrf import class_model, mrf_segment
from seglab.errors import ParameterError


def _noisy(sd=0.15, seed=0):
    truth = np.zeros((128, 128), int)
    truth[20:70, 30:90] = 1
    truth[:, 100:] = 2
    truth[90:120, 10:60] = 1
    img = np.array([0.2, 0.5, 0.8])[truth] + np.random.default_rng(seed).normal(0, sd, truth.shape)
    return np.clip(img, 0, 1), truth


def _error(labels, truth):
    return min((np.array(p)[labels] != truth).mean() for p in itertools.permutations(range(3)))


def _boundary_pixels(labels):
    return int((labels[:, 1:] != labels[:, :-1]).sum() + (labels[1:] != labels[:-1]).sum())


def test_icm_energy_decreases_monotonically_and_matches_its_definition():
    img, truth = _noisy()
    labels, energy = mrf_segment(img, k=3, beta=2.0, algorithm="icm", return_energy=True)
    assert len(energy) >= 3 and np.all(np.diff(energy) <= 1e-9)
    assert _error(labels, truth) < 0.1
    # the last value is E = sum_p -log N(I_p; mu, var) + beta * #unlike pairs of the returned labels, with
    # the class parameters fixed from the k-means start
    x = img[..., None]
    _, mu, var = class_model(x, 3, 0)
    d = (0.5 * ((x - mu[labels]) ** 2 / var[labels] + np.log(2 * np.pi * var[labels]))).sum()
    assert energy[-1] == pytest.approx(d + 2.0 * _boundary_pixels(labels), rel=1e-9)


def test_gibbs_annealing_reaches_lower_or_equal_energy_than_icm():
    img, _ = _noisy()
    for beta in (1.0, 2.0):
        _, e_icm = mrf_segment(img, k=3, beta=beta, algorithm="icm", return_energy=True)
        _, e_gibbs = mrf_segment(img, k=3, beta=beta, algorithm="gibbs", return_energy=True)
        assert e_gibbs[0] == e_icm[0]             # same k-means start, same energy function
        assert e_gibbs[-1] <= e_icm[-1]
    assert e_gibbs[-1] < e_icm[-1] - 100          # annealing escapes ICM's local minimum here


def test_higher_beta_gives_fewer_boundary_pixels():
    img, _ = _noisy()
    for algorithm in ("icm", "gibbs"):
        counts = [_boundary_pixels(seglab.segment(img, "mrf", k=3, beta=b, algorithm=algorithm))
                  for b in (0.0, 1.0, 4.0)]
        assert counts[0] > counts[1] > counts[2], (algorithm, counts)


def test_multiscale_converges_in_fewer_fine_level_sweeps():
    img, truth = _noisy()
    for algorithm in ("icm", "gibbs"):
        l1, e1 = mrf_segment(img, k=3, beta=2.0, algorithm=algorithm, return_energy=True)
        l2, e2 = mrf_segment(img, k=3, beta=2.0, algorithm=algorithm, multiscale=True, return_energy=True)
        assert len(e2) < len(e1), algorithm
        assert e2[0] < e1[0]                      # the coarse result is a far better start
        assert e2[-1] <= e1[-1] + 1e-6 * abs(e1[-1]) or algorithm == "gibbs"
        assert _error(l2, truth) < 0.05


def test_all_four_variants_segment_a_colour_image_deterministically():
    img, truth = _noisy(sd=0.08)
    col = np.stack([img, 1 - img, 0.5 * img + 0.2], axis=-1)
    for algorithm, multiscale in itertools.product(("icm", "gibbs"), (False, True)):
        a = seglab.segment(col, "mrf", k=3, algorithm=algorithm, multiscale=multiscale, seed=3)
        b = seglab.segment(col, "mrf", k=3, algorithm=algorithm, multiscale=multiscale, seed=3)
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.int32 and _error(a, truth) < 0.02, (algorithm, multiscale)


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (4, 5, 3), (70, 3)])
@pytest.mark.parametrize("algorithm", ["icm", "gibbs"])
def test_tiny_and_constant_images(shape, algorithm):
    for multiscale in (False, True):
        const = seglab.segment(np.full(shape, 0.3), "mrf", k=3, algorithm=algorithm, multiscale=multiscale)
        assert const.shape == shape[:2] and np.all(const == 0)
        noisy = seglab.segment(np.random.default_rng(1).random(shape), "mrf", algorithm=algorithm,
                               multiscale=multiscale)
        assert noisy.shape == shape[:2] and noisy.min() == 0 and noisy.max() <= 2


def test_bad_parameters():
    img = np.zeros((8, 8))
    with pytest.raises(ParameterError, match="algorithm"):
        seglab.segment(img, "mrf", algorithm="graphcut")
    with pytest.raises(ParameterError, match="beta"):
        seglab.segment(img, "mrf", beta=-1)
    with pytest.raises(ParameterError, match="'k'"):
        seglab.segment(img, "mrf", k=0)
    with pytest.raises(ParameterError, match="multiscale"):
        seglab.segment(img, "mrf", multiscale="yes")
