"""Surface distances against MONAI, torchmetrics and a brute-force definition; spacing, 3D, empty masks."""
import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage

from seglab.errors import ParameterError, SeglabError
from seglab.metrics import (assd, boundary_f, distances_per_class, hausdorff_distance, hd95, surface,
                            surface_distances)


def _blob(rng, shape, n=3):
    m = np.zeros(shape, bool)
    grids = np.indices(shape)
    for _ in range(n):
        c = [rng.uniform(0.2, 0.8) * s for s in shape]
        r = rng.uniform(0.1, 0.3) * min(shape)
        m |= sum((g - ci) ** 2 for g, ci in zip(grids, c)) < r * r
    return m


def _monai(p, t, spacing=None, percentile=None, kind="hd"):
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    P = torch.from_numpy(p)[None, None]
    T = torch.from_numpy(t)[None, None]
    sp = None if spacing is None else [float(s) for s in spacing]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "assd":
            return float(compute_average_surface_distance(P, T, symmetric=True, spacing=sp)[0, 0])
        return float(compute_hausdorff_distance(P, T, percentile=percentile, spacing=sp)[0, 0])


def _brute(p, t, spacing):
    """Directed distances by exhaustive pairwise search over surface points."""
    s = np.asarray(spacing, float)
    sp = np.argwhere(p & ~ndimage.binary_erosion(p)) * s
    st = np.argwhere(t & ~ndimage.binary_erosion(t)) * s
    d = np.sqrt(((sp[:, None, :] - st[None, :, :]) ** 2).sum(-1))
    return d.min(1), d.min(0)


@pytest.mark.parametrize("seed", range(4))
def test_matches_monai_2d_with_spacing(seed):
    rng = np.random.default_rng(seed)
    p, t = _blob(rng, (48, 56)), _blob(rng, (48, 56))
    spacing = (1.0, 1.0) if seed % 2 == 0 else (0.7, 1.9)
    assert hausdorff_distance(p, t, spacing) == pytest.approx(_monai(p, t, spacing), rel=1e-5)
    assert hd95(p, t, spacing) == pytest.approx(_monai(p, t, spacing, 95), rel=1e-5)
    assert assd(p, t, spacing) == pytest.approx(_monai(p, t, spacing, kind="assd"), rel=1e-5)


def test_matches_monai_3d_anisotropic():
    rng = np.random.default_rng(7)
    p, t = _blob(rng, (12, 20, 22)), _blob(rng, (12, 20, 22))
    sp = (2.5, 0.8, 0.8)
    assert hausdorff_distance(p, t, sp) == pytest.approx(_monai(p, t, sp), rel=1e-5)
    assert hd95(p, t, sp) == pytest.approx(_monai(p, t, sp, 95), rel=1e-5)
    assert assd(p, t, sp) == pytest.approx(_monai(p, t, sp, kind="assd"), rel=1e-5)


def test_matches_brute_force_definition(rng):
    p, t = _blob(rng, (30, 25)), _blob(rng, (30, 25))
    sp = (1.3, 0.6)
    d_pt, d_tp = surface_distances(p, t, sp)
    b_pt, b_tp = _brute(p, t, sp)
    np.testing.assert_allclose(np.sort(d_pt), np.sort(b_pt), rtol=1e-12)
    np.testing.assert_allclose(np.sort(d_tp), np.sort(b_tp), rtol=1e-12)
    assert hausdorff_distance(p, t, sp) == pytest.approx(max(b_pt.max(), b_tp.max()))
    # boundary F at a tolerance
    f, prec, rec = boundary_f(p, t, 1.5, sp, return_pr=True)
    assert prec == pytest.approx(np.mean(b_pt <= 1.5)) and rec == pytest.approx(np.mean(b_tp <= 1.5))
    assert f == pytest.approx(2 * prec * rec / (prec + rec))


def test_matches_torchmetrics_hausdorff(rng):
    from torchmetrics.segmentation import HausdorffDistance

    for _ in range(3):
        p, t = _blob(rng, (40, 40)), _blob(rng, (40, 40))
        tm = HausdorffDistance(num_classes=2, include_background=False, input_format="index")
        tm.update(torch.from_numpy(p.astype(np.int64))[None], torch.from_numpy(t.astype(np.int64))[None])
        assert hausdorff_distance(p, t) == pytest.approx(float(tm.compute()), rel=1e-5)


def test_empty_mask_conventions_match_monai():
    z = np.zeros((20, 20), bool)
    m = z.copy()
    m[5:10, 5:12] = True
    assert np.isnan(hausdorff_distance(z, z)) and np.isnan(_monai(z, z))
    assert np.isnan(hd95(z, z)) and np.isnan(assd(z, z)) and np.isnan(boundary_f(z, z))
    for a, b in ((m, z), (z, m)):
        assert hausdorff_distance(a, b) == np.inf == _monai(a, b)
        assert assd(a, b) == np.inf == _monai(a, b, kind="assd")
        # MONAI returns NaN for HD95 here (quantile of infinities); we keep the HD value, inf
        assert hd95(a, b) == np.inf
        assert boundary_f(a, b) == 0.0
    assert hausdorff_distance(m, m) == 0.0 and boundary_f(m, m, 0) == 1.0


def test_surface_definition():
    m = np.zeros((7, 7), bool)
    m[1:6, 1:6] = True
    s = surface(m)
    assert s.sum() == 16 and not s[2:5, 2:5].any()
    full = np.ones((3, 3), bool)  # touching the border: border pixels are surface
    assert surface(full).sum() == 8


def test_per_class_and_ignore(rng):
    t = rng.integers(0, 3, (30, 30))
    t = ndimage.median_filter(t, 5)
    p = np.roll(t, 2, axis=1)
    t2 = t.copy()
    t2[:, :3] = 255
    res = distances_per_class(p, t2, 4, ignore_index=255)
    for c in range(3):
        keep = t2 != 255
        assert res["hd95"][c] == pytest.approx(hd95((p == c) & keep, (t2 == c) & keep))
        assert res["assd"][c] == pytest.approx(assd((p == c) & keep, (t2 == c) & keep))
    assert np.isnan(res["hd"][3])


def test_bad_input():
    m = np.ones((4, 4), bool)
    with pytest.raises(SeglabError):
        hausdorff_distance(m, np.ones((4, 5), bool))
    with pytest.raises(ParameterError):
        hausdorff_distance(m, m, spacing=(1.0, -1.0))
    with pytest.raises(ParameterError):
        hausdorff_distance(m, m, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ParameterError):
        boundary_f(m, m, tolerance=-1)
    with pytest.raises(SeglabError):
        hausdorff_distance(np.ones(5, bool), np.ones(5, bool))
