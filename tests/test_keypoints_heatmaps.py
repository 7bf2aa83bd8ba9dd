"""Heatmap targets, soft-argmax, decoding and losses, checked against their definitions."""
import math

import numpy as np
import pytest
import torch

from seglab.errors import ParameterError
from seglab.keypoints import (SoftArgmax, argmax_decode, decode_points, find_peaks, gaussian_heatmaps,
                              instance_centroids, onehot_targets, points_heatmap, refine_peaks, soft_argmax,
                              soft_argmax_decode)
from seglab.keypoints.losses import heatmap_cross_entropy, heatmap_mse, soft_argmax_loss


# -- soft-argmax -------------------------------------------------------------------------------------------
def _soft_argmax_by_definition(h, t, stride):
    """x = sum_ij p_ij (j + 0.5) s, y = sum_ij p_ij (i + 0.5) s with p = softmax(h / t), written out."""
    hh, ww = h.shape
    e = np.exp((h - h.max()) / t)
    p = e / e.sum()
    x = sum(p[i, j] * (j + 0.5) * stride for i in range(hh) for j in range(ww))
    y = sum(p[i, j] * (i + 0.5) * stride for i in range(hh) for j in range(ww))
    return x, y


@pytest.mark.parametrize("t,stride", [(1.0, 1.0), (0.3, 4.0), (2.5, 0.5)])
def test_soft_argmax_matches_its_definition(t, stride):
    rng = np.random.default_rng(0)
    h = rng.normal(size=(2, 3, 5, 7))
    got = soft_argmax(torch.from_numpy(h), t, stride).numpy()
    assert got.shape == (2, 3, 2)
    for b in range(2):
        for k in range(3):
            np.testing.assert_allclose(got[b, k], _soft_argmax_by_definition(h[b, k], t, stride), rtol=1e-12)


def test_soft_argmax_per_keypoint_temperature():
    rng = np.random.default_rng(1)
    h = rng.normal(size=(2, 3, 4, 6))
    temps = np.array([0.5, 1.0, 3.0])
    got = soft_argmax(torch.from_numpy(h), torch.from_numpy(temps)).numpy()
    for b in range(2):
        for k in range(3):
            np.testing.assert_allclose(got[b, k], _soft_argmax_by_definition(h[b, k], temps[k], 1.0), rtol=1e-12)


def test_soft_argmax_gradcheck_heatmap_and_temperature():
    torch.manual_seed(0)
    h = torch.randn(2, 4, 5, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda h, t: soft_argmax(h, t, 2.0), (h, t))
    assert torch.autograd.gradgradcheck(lambda h: soft_argmax(h, 0.7), (h,))


def test_soft_argmax_limits():
    rng = np.random.default_rng(2)
    h = torch.from_numpy(rng.normal(size=(6, 9, 11)))
    i, j = np.unravel_index(h.flatten(1).argmax(1).numpy(), (9, 11))
    np.testing.assert_allclose(soft_argmax(h, 1e-4).numpy(), np.stack([j + 0.5, i + 0.5], 1), atol=1e-9)
    # a heatmap symmetric about its centre, of either parity, gives the centre at any temperature
    for hh, ww in ((7, 9), (8, 6)):
        g = torch.from_numpy(rng.normal(size=(hh, ww)))
        sym = g + g.flip(0) + g.flip(1) + g.flip(0).flip(1)
        for t in (0.1, 1.0, 10.0):
            np.testing.assert_allclose(soft_argmax(sym, t).numpy(), [ww / 2, hh / 2], atol=1e-9)
    # infinite temperature: the centre of the map
    np.testing.assert_allclose(soft_argmax(h, 1e9).numpy(), np.tile([11 / 2, 9 / 2], (6, 1)), atol=1e-6)
    with pytest.raises(ParameterError, match="temperature"):
        soft_argmax(h, 0.0)


def test_soft_argmax_module_learnable_temperature_gets_gradient():
    m = SoftArgmax(0.5, learnable=True, num_keypoints=3)
    assert m.temperature.shape == (3,) and torch.allclose(m.temperature, torch.tensor(0.5))
    h = torch.randn(2, 3, 6, 6)
    loss = soft_argmax_loss(h, torch.zeros(2, 3, 2), temperature=m.temperature)
    loss.backward()
    assert m.log_temperature.grad is not None and m.log_temperature.grad.abs().sum() > 0
    fixed = SoftArgmax(0.5)
    assert not list(fixed.parameters())
    torch.testing.assert_close(fixed(h), soft_argmax(h, 0.5))


# -- targets -----------------------------------------------------------------------------------------------
def test_gaussian_heatmaps_definition_and_invalid_keypoints():
    kp = np.array([[4.3, 2.6, 2], [1.0, 1.0, 0], [30.0, 2.0, 2], [-0.5, 3.0, 1]], float)
    maps, w = gaussian_heatmaps(kp, (6, 8), sigma=1.5)
    assert maps.shape == (4, 6, 8) and w.tolist() == [1, 0, 0, 0]  # absent, outside right, outside left
    i, j = np.mgrid[0:6, 0:8]
    ref = np.exp(-((j + 0.5 - 4.3) ** 2 + (i + 0.5 - 2.6) ** 2) / (2 * 1.5 ** 2))
    np.testing.assert_allclose(maps[0].numpy(), ref, rtol=1e-6)
    assert maps[1:].abs().sum() == 0
    # stride 4: a cell covers 4 pixels, sigma in cells
    maps4, _ = gaussian_heatmaps([[10.0, 6.0, 2]], (3, 4), sigma=1.0, stride=4)
    ref4 = np.exp(-(((j[:3, :4] + 0.5) - 2.5) ** 2 + ((i[:3, :4] + 0.5) - 1.5) ** 2) / 2)
    np.testing.assert_allclose(maps4[0].numpy(), ref4, rtol=1e-6)
    with pytest.raises(ParameterError, match="NaN"):
        gaussian_heatmaps([[np.nan, 1, 2]], (4, 4))
    with pytest.raises(ParameterError, match="K x 3"):
        gaussian_heatmaps([[1, 2]], (4, 4))


def test_points_heatmap_is_max_of_gaussians():
    pts = np.array([[5.2, 5.1], [8.0, 6.5], [40.0, 40.0]])
    hm = points_heatmap(pts, (12, 14), sigma=1.2).numpy()
    i, j = np.mgrid[0:12, 0:14]
    g = [np.exp(-((j + 0.5 - x) ** 2 + (i + 0.5 - y) ** 2) / (2 * 1.2 ** 2)) for x, y in pts[:2]]
    ref = np.maximum(*g)
    # each Gaussian is drawn in a window of ceil(3 sigma) cells around its cell: what it leaves out is small
    cut = math.exp(-(math.ceil(3 * 1.2) - 0.5) ** 2 / (2 * 1.2 ** 2))
    np.testing.assert_allclose(hm, ref, rtol=1e-5, atol=cut)
    near = ref > cut
    np.testing.assert_allclose(hm[near], ref[near], rtol=1e-5)
    assert near.sum() > 2 * 25
    assert points_heatmap(np.zeros((0, 2)), (3, 3)).sum() == 0


def test_onehot_targets():
    idx = onehot_targets([[2.7, 1.2, 2], [0.0, 0.0, 0], [9.0, 1.0, 1], [7.9, 3.9, 1]], (4, 8))
    assert idx.tolist() == [1 * 8 + 2, -1, -1, 3 * 8 + 7]
    assert onehot_targets([[9.0, 5.0, 2]], (2, 3), stride=4).tolist() == [1 * 3 + 2]


# -- decoding ----------------------------------------------------------------------------------------------
def test_argmax_refinement_recovers_subpixel_gaussian_centre():
    rng = np.random.default_rng(3)
    centres = rng.uniform(5, 15, size=(40, 2))
    maps = torch.stack([gaussian_heatmaps([[x, y, 2]], (20, 20), sigma=2.0)[0][0] for x, y in centres])
    err = {}
    for refine in (None, "quarter", "quadratic", "gaussian"):
        xy, scores = argmax_decode(maps, refine)
        err[refine] = np.abs(xy.numpy() - centres).mean()
        assert scores.shape == (40,)
    assert err["quadratic"] < err["quarter"] < err[None]
    assert err["gaussian"] < 1e-4  # a parabola on the log of a Gaussian is exact
    assert err[None] == pytest.approx(0.25, abs=0.07)  # uniform sub-cell offsets average 1/4 cell
    xy4, _ = argmax_decode(maps[:1], "gaussian", stride=4)
    np.testing.assert_allclose(xy4.numpy(), 4 * centres[:1], atol=1e-3)


def test_soft_argmax_decode_and_peaks():
    # logits -d^2 / (2 sigma^2): the softmax is a sampled Gaussian, whose mean is its centre
    i, j = np.mgrid[0:24, 0:24]
    logits = torch.from_numpy(-((j + 0.5 - 12.3) ** 2 + (i + 0.5 - 10.2) ** 2) / (2 * 2.0 ** 2))[None]
    xy, score = soft_argmax_decode(logits, temperature=1.0)
    np.testing.assert_allclose(xy.numpy(), [[12.3, 10.2]], atol=1e-6)
    xy_sharp, _ = soft_argmax_decode(logits, temperature=1e-3)  # -> the argmax cell's centre
    np.testing.assert_allclose(xy_sharp.numpy(), [[12.5, 10.5]], atol=1e-6)
    pts = np.array([[3.4, 3.6], [12.2, 4.7], [6.5, 14.1]])
    hm = points_heatmap(pts, (20, 20), sigma=1.5)
    rows, cols, scores = find_peaks(hm, threshold=0.5, min_distance=2)
    assert sorted(zip(rows.tolist(), cols.tolist())) == sorted((int(y), int(x)) for x, y in pts)
    assert (scores[:-1] >= scores[1:]).all()
    for method, tol in ((None, 0.5), ("gaussian", 0.02), ("soft_argmax", 0.3)):
        xy = refine_peaks(hm, rows, cols, method, radius=2, temperature=0.2)
        got = xy.numpy()[np.argsort(cols.numpy() * 100 + rows.numpy())]
        ref = pts[np.argsort(np.floor(pts[:, 0]) * 100 + np.floor(pts[:, 1]))]
        assert np.abs(got - ref).max() <= tol + 1e-6, method
    # a plateau gives one peak; a peak at the border is refined inside the image
    flat = torch.zeros(8, 8)
    flat[2:4, 2:4] = 1.0
    assert len(find_peaks(flat, 0.5, 1)[0]) == 1
    edge = torch.zeros(6, 6)
    edge[0, 0], edge[0, 1], edge[1, 0] = 1.0, 0.5, 0.5
    xy, _ = decode_points(edge, threshold=0.5, min_distance=1, refine="soft_argmax", radius=2, temperature=0.5)
    assert xy.shape == (1, 2) and (xy >= 0).all() and (xy <= 2).all()
    with pytest.raises(ParameterError, match="refine"):
        argmax_decode(logits, "cubic")


# -- losses ------------------------------------------------------------------------------------------------
def test_heatmap_losses_by_definition():
    torch.manual_seed(0)
    pred, target = torch.rand(2, 3, 4, 5), torch.rand(2, 3, 4, 5)
    assert heatmap_mse(pred, target) == pytest.approx(float(((pred - target) ** 2).mean()), rel=1e-6)
    vis = torch.tensor([[1.0, 0, 1], [0, 0, 1]])
    ref = ((pred - target) ** 2)[vis > 0].mean()
    assert heatmap_mse(pred, target, vis) == pytest.approx(float(ref), rel=1e-6)
    logits = torch.randn(2, 3, 4, 5)
    idx = torch.tensor([[3, -1, 19], [0, 7, -1]])
    logp = torch.log_softmax(logits.flatten(2), -1)
    ref_ce = -(logp[0, 0, 3] + logp[0, 2, 19] + logp[1, 0, 0] + logp[1, 1, 7]) / 4
    assert heatmap_cross_entropy(logits, idx) == pytest.approx(float(ref_ce), rel=1e-6)
    assert heatmap_cross_entropy(logits, torch.full((2, 3), -1)) == 0  # all-invisible: legal, zero
    with pytest.raises(ParameterError, match="target_index"):
        heatmap_cross_entropy(logits, torch.tensor([[0, 0, 20], [0, 0, 0]]))
    target_xy = torch.rand(2, 3, 2) * 4
    xy = soft_argmax(logits, 0.5)
    l1 = soft_argmax_loss(logits, target_xy, vis, temperature=0.5, norm="l1")
    assert l1 == pytest.approx(float((xy - target_xy).abs()[vis > 0].mean()), rel=1e-6)
    l2 = soft_argmax_loss(logits, target_xy, vis, temperature=0.5, norm="l2")
    assert l2 == pytest.approx(float(((xy - target_xy) ** 2)[vis > 0].mean()), rel=1e-6)
    with pytest.raises(ParameterError, match="target_xy"):
        soft_argmax_loss(logits, torch.zeros(2, 4, 2))  # K mismatch between data and model
    with pytest.raises(ParameterError, match="shape"):
        heatmap_mse(pred, target[:, :2])


def test_soft_argmax_loss_trains_coordinates():
    """A few steps of gradient descent on the heatmap logits move the soft-argmax to the target."""
    logits = torch.zeros(1, 1, 16, 16, requires_grad=True)
    target = torch.tensor([[[11.3, 4.6]]])
    opt = torch.optim.SGD([logits], lr=5.0)
    for _ in range(100):
        opt.zero_grad()
        soft_argmax_loss(logits, target, norm="l2").backward()
        opt.step()
    assert (soft_argmax(logits.detach()) - target).abs().max() < 0.05


def test_instance_centroids_match_skimage_regionprops():
    from skimage.measure import regionprops

    rng = np.random.default_rng(4)
    lab = np.zeros((30, 40), np.int32)
    for n, (r, c) in enumerate(rng.integers(0, 25, (6, 2)), start=2):
        lab[r:r + rng.integers(1, 6), c:c + rng.integers(1, 9)] = n * 3  # ids with gaps, overlaps allowed
    xy, ids = instance_centroids(lab)
    props = regionprops(lab)
    assert ids.tolist() == [p.label for p in props]
    np.testing.assert_allclose(xy, [[p.centroid[1] + 0.5, p.centroid[0] + 0.5] for p in props])
    assert instance_centroids(np.zeros((4, 4), np.uint16))[0].shape == (0, 2)
    with pytest.raises(ParameterError, match="label_map"):
        instance_centroids(np.zeros((4, 4), np.float32))
