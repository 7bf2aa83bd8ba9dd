import numpy as np
import pytest
from skimage.morphology import local_minima, reconstruction
from skimage.segmentation import watershed as sk_watershed

import seglab
from seglab.classical.watershed import closing_opening_by_reconstruction, flood, gradient_magnitude, h_minima_markers
from seglab.errors import ParameterError, SeglabError


def two_touching_discs(shape=(60, 90), r=18):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    a = (yy - 30) ** 2 + (xx - 30) ** 2 <= r * r
    b = (yy - 30) ** 2 + (xx - 58) ** 2 <= r * r
    return a, b


def test_distance_markers_split_two_touching_discs():
    a, b = two_touching_discs()
    img = (a | b).astype(float)
    lab = seglab.segment(img, "watershed", marker_method="distance", min_distance=10)
    assert lab[~(a | b)].max() == 0                       # background is 0
    assert len(np.unique(lab[a | b])) == 2                # exactly two objects
    assert lab[30, 20] != lab[30, 68] and lab[30, 20] > 0 and lab[30, 68] > 0
    # each object is essentially its own disc (the cut is at the neck, x ~ 44)
    assert (lab[a & ~b] == lab[30, 20]).mean() > 0.95 and (lab[b & ~a] == lab[30, 68]).mean() > 0.95
    line = seglab.segment(img, "watershed", marker_method="distance", min_distance=10, watershed_line=True)
    assert (line[a & b] == 0).any() and len(np.unique(line[a | b])) == 3


def test_given_markers_separate_the_discs_along_the_gradient(rng):
    a, b = two_touching_discs()
    img = np.where(a, 0.3, 0.0) + np.where(b & ~a, 0.8, 0.0) + rng.normal(0, 0.01, a.shape)
    markers = np.zeros(a.shape, int)
    markers[30, 25], markers[30, 63], markers[2, 2] = 1, 2, 3
    lab = seglab.segment(img, "watershed", markers=markers)
    assert (lab[a & ~b] == 1).mean() > 0.97 and (lab[b & ~a] == 2).mean() > 0.97
    assert (lab[~(a | b)] == 3).mean() > 0.97
    with pytest.raises(SeglabError):
        seglab.segment(img, "watershed", markers=markers[:-1])


def test_flooding_equals_skimage_watershed(rng):
    surface = rng.random((50, 70))
    markers = np.zeros(surface.shape, int)
    idx = rng.choice(surface.size, 25, replace=False)
    markers.flat[idx] = np.arange(1, 26)
    assert (flood(surface, markers) == sk_watershed(surface, markers)).mean() > 0.999
    ours = flood(surface, markers, compactness=0.05)
    assert (ours == sk_watershed(surface, markers, compactness=0.05)).mean() > 0.99
    lines = flood(surface, markers, watershed_line=True)
    assert (lines == sk_watershed(surface, markers, watershed_line=True)).mean() > 0.9
    # every line pixel separates two regions; without lines nothing is left unlabelled
    assert (lines == 0).any() and (flood(surface, markers) > 0).all()


def test_h_minima_markers_are_the_regional_minima_of_the_reconstruction(rng):
    from scipy import ndimage as ndi

    g = ndi.gaussian_filter(rng.random((60, 60)), 2)
    for h in (0.0, 0.01, 0.03):
        ref = local_minima(reconstruction(g + h, g, method="erosion") if h else g, connectivity=2,
                           allow_borders=True)
        assert np.array_equal(h_minima_markers(g, h) > 0, ref)
    counts = [h_minima_markers(g, h).max() for h in (0.0, 0.005, 0.02, 1.0)]
    assert counts == sorted(counts, reverse=True) and counts[-1] == 1


def test_scale_and_prefilters_reduce_over_segmentation(rng):
    from scipy import ndimage as ndi

    img = ndi.gaussian_filter(rng.random((80, 80)), 1.5)
    n = lambda **kw: len(np.unique(seglab.segment(img, "watershed", **kw)))
    assert n(h=0.0) > n(h=0.005) > n(h=0.05)
    assert n(h=0.0, prefilter="area", area=30) < n(h=0.0)
    assert n(h=0.0, prefilter="reconstruction", radius=2) < n(h=0.0)
    # closing+opening by reconstruction: no new extrema, values stay within the original range
    g = gradient_magnitude(img, 1.0)
    f = closing_opening_by_reconstruction(g, 2)
    assert f.min() >= g.min() - 1e-6 and f.max() <= g.max() + 1e-6


def test_gradient_magnitude_of_a_unit_step():
    img = np.zeros((9, 10))
    img[:, 5:] = 1.0
    g = gradient_magnitude(img, 0.0)
    assert np.allclose(g[4, 4], 0.5) and np.allclose(g[4, 5], 0.5) and g[4, 0] == 0


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (7, 7), (7, 7, 3)])
@pytest.mark.parametrize("kw", [{}, {"marker_method": "distance"}, {"prefilter": "reconstruction"},
                                {"compactness": 1.0, "watershed_line": True}])
def test_tiny_and_constant_images(shape, kw, rng):
    for img in (np.zeros(shape), rng.random(shape)):
        lab = seglab.segment(img, "watershed", **kw)
        assert lab.dtype == np.int32 and lab.shape == shape[:2]


def test_deterministic(rng):
    img = rng.random((30, 40, 3))
    assert np.array_equal(seglab.segment(img, "watershed", h=0.01), seglab.segment(img.copy(), "watershed", h=0.01))


@pytest.mark.parametrize("params", [{"h": -0.1}, {"marker_method": "peaks"}, {"prefilter": "open"},
                                    {"area": 0}, {"radius": 0}, {"compactness": -1}, {"markers": np.zeros(5)}])
def test_bad_parameters_raise(params):
    with pytest.raises(ParameterError):
        seglab.segment(np.zeros((5, 5)), "watershed", **params)
