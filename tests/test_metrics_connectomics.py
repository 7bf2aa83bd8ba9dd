"""ISBI 2012 scores (V_rand, V_info), adapted Rand error and pixel error: direct pair-counting
definitions, scikit-image, and the real ISBI labels."""
from collections import Counter

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from skimage.metrics import adapted_rand_error as sk_are

from seglab.errors import SeglabError
from seglab.metrics import (adapted_rand_error, best_isbi_scores, info_scores, isbi_scores, labels_from_membranes,
                            pixel_error, rand_error, rand_scores, thin_boundaries, v_info, v_rand)


def _direct(pred, gt):
    """V_rand and V_info straight from the definitions, without thinning, over gt > 0 pixels:
    sum p_ij^2 is the probability that two pixels drawn with replacement share both labels."""
    m = gt > 0
    s, t = pred[m].ravel(), gt[m].ravel()
    same_s = s[:, None] == s[None, :]
    same_t = t[:, None] == t[None, :]
    a, b, c = (same_s & same_t).mean(), same_s.mean(), same_t.mean()
    n = len(s)

    def H(counter):
        p = np.array(list(counter.values())) / n
        return -np.sum(p * np.log(p))

    hs, ht, hst = H(Counter(s.tolist())), H(Counter(t.tolist())), H(Counter(zip(s.tolist(), t.tolist())))
    mi = hs + ht - hst
    return {"v_rand": a / (0.5 * b + 0.5 * c), "rand_split": a / c, "rand_merge": a / b,
            "v_info": mi / (0.5 * hs + 0.5 * ht), "info_split": mi / hs, "info_merge": mi / ht}


@pytest.mark.parametrize("seed", range(3))
def test_match_direct_definition(seed):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 5, (12, 14))
    pred = rng.integers(1, 4, (12, 14))
    ref = _direct(pred, gt)
    r = rand_scores(pred, gt, thin=False)
    i = info_scores(pred, gt, thin=False)
    assert r["v_rand"] == pytest.approx(ref["v_rand"], rel=1e-10)
    assert r["split"] == pytest.approx(ref["rand_split"], rel=1e-10)
    assert r["merge"] == pytest.approx(ref["rand_merge"], rel=1e-10)
    assert i["v_info"] == pytest.approx(ref["v_info"], rel=1e-10)
    assert i["split"] == pytest.approx(ref["info_split"], rel=1e-10)
    assert i["merge"] == pytest.approx(ref["info_merge"], rel=1e-10)
    assert r["error"] == pytest.approx(1 - ref["v_rand"])


def test_adapted_rand_matches_skimage(rng):
    for _ in range(5):
        gt = rng.integers(0, 6, (20, 20))
        pred = rng.integers(0, 4, (20, 20))
        err, prec, rec = adapted_rand_error(pred, gt)
        ref_err, ref_a, ref_b = sk_are(gt, pred)
        assert err == pytest.approx(ref_err, rel=1e-10)
        # scikit-image divides by the true-segment pairs in what it returns first; we call that recall
        assert rec == pytest.approx(ref_a, rel=1e-10) and prec == pytest.approx(ref_b, rel=1e-10)


def test_thinning_grows_segments_into_boundaries():
    lab = np.array([[1, 1, 0, 2, 2],
                    [1, 1, 0, 2, 2],
                    [0, 0, 0, 0, 0]])
    th = thin_boundaries(lab)
    assert (th > 0).all()
    assert set(np.unique(th)) == {1, 2}
    assert (th[:2, :2] == 1).all() and (th[:2, 3:] == 2).all()
    np.testing.assert_array_equal(thin_boundaries(np.zeros((3, 3), int)), np.ones((3, 3)))


@pytest.fixture(scope="module")
def isbi_gt(data_dir):
    return labels_from_membranes(np.asarray(Image.open(data_dir / "isbi2012" / "label" / "0.png")))


def test_isbi_real_labels_directions(isbi_gt):
    gt = isbi_gt
    same = isbi_scores(gt, gt)
    assert same["rand_error"] == 0.0 and same["info_error"] == pytest.approx(0.0, abs=1e-12)
    assert adapted_rand_error(gt, gt)[0] == pytest.approx(0.0, abs=1e-12)
    # merging two large touching cells: merge scores drop, split scores stay perfect
    sizes = np.bincount(gt.ravel())
    a, b = np.argsort(sizes[1:])[-2:] + 1
    merged = gt.copy()
    merged[merged == b] = a
    s = isbi_scores(merged, gt)
    assert s["v_rand_split"] == pytest.approx(1.0) and s["v_rand_merge"] < 1.0
    assert s["v_info_split"] == pytest.approx(1.0) and s["v_info_merge"] < 1.0
    # splitting the largest cell with a one-pixel boundary line: split scores drop, merge stays perfect
    x0 = int(np.median(np.nonzero(gt == a)[1]))
    cols = np.arange(gt.shape[1])[None, :]
    split = gt.copy()
    split[(gt == a) & (cols == x0)] = 0           # a boundary line through the cell ...
    split[(gt == a) & (cols > x0)] = gt.max() + 1  # ... and a new label on one side
    s2 = isbi_scores(split, gt)
    assert s2["v_rand_merge"] == pytest.approx(1.0) and s2["v_rand_split"] < 1.0
    assert s2["v_info_merge"] == pytest.approx(1.0) and s2["v_info_split"] < 1.0


def test_isbi_real_labels_eroded_and_pixel_error(isbi_gt):
    gt = isbi_gt
    eroded = ndimage.grey_erosion(gt, size=3) * ndimage.binary_erosion(gt > 0)
    thin = rand_scores(eroded, gt)["error"]
    raw = rand_scores(eroded, gt, thin=False)["error"]
    # thinning regrows the cells into the widened membranes: small error; without it the eroded ring
    # (label 0) is one huge segment fused across all cells
    assert 0 <= thin < 0.05 < raw
    pe = pixel_error(eroded > 0, gt > 0)
    assert pe == pytest.approx(np.mean((eroded > 0) != (gt > 0))) and 0 < pe < 0.2
    assert pixel_error(gt, gt) == 0.0
    assert pixel_error(np.where(gt > 0, 0.9, 0.1), gt > 0) == 0.0


def test_stack_pools_counts_over_thinned_slices(data_dir):
    lab = np.stack([np.asarray(Image.open(data_dir / "isbi2012" / "label" / f"{i}.png")) for i in (3, 4)])
    gt = labels_from_membranes(lab, stack=True)
    assert gt[1][gt[1] > 0].min() == gt[0].max() + 1  # labels unique over the stack
    pred = labels_from_membranes(ndimage.binary_erosion(lab > 0, structure=np.ones((1, 3, 3))), stack=True)
    thinned = np.concatenate([thin_boundaries(pred[i], gt[i] > 0) for i in range(2)], axis=1)
    flat_gt = np.concatenate(list(gt), axis=1)
    ref = isbi_scores(thinned, flat_gt, thin=False)
    got = isbi_scores(pred, gt, stack=True)
    assert got == pytest.approx(ref, rel=1e-12)


def test_best_over_thresholds_on_real_labels(isbi_gt, data_dir):
    lab = np.asarray(Image.open(data_dir / "isbi2012" / "label" / "0.png"))[:200, :200]
    gt = isbi_gt[:200, :200]
    prob = ndimage.gaussian_filter((lab > 0).astype(float), 1.0)  # a soft, slightly blurred interior map
    best = best_isbi_scores(prob, gt)
    per = [isbi_scores(labels_from_membranes(prob > t), gt)["v_rand"] for t in np.arange(0, 1, 0.1)]
    assert best["v_rand"] == pytest.approx(max(per))
    assert best["rand_threshold"] == pytest.approx(np.arange(0, 1, 0.1)[int(np.argmax(per))])
    assert 0.9 < best["v_rand"] <= 1.0 and best["v_info"] > 0.9
    assert best_isbi_scores(prob, gt, [0.0])["v_rand"] < best["v_rand"]  # t = 0: everything one cell


def test_boolean_masks_are_cell_maps(isbi_gt):
    gt_mask = isbi_gt > 0
    pred_mask = ndimage.binary_erosion(gt_mask)
    pred_mask[100:300, 200] = False  # an extra membrane line splits cells
    ref = isbi_scores(labels_from_membranes(pred_mask), isbi_gt)
    assert v_rand(pred_mask, gt_mask) == pytest.approx(ref["v_rand"], rel=1e-12)
    assert ref["v_rand"] < 0.99
    assert rand_error(pred_mask, gt_mask) == pytest.approx(ref["rand_error"], rel=1e-12)
    assert v_info(pred_mask, gt_mask) == pytest.approx(ref["v_info"], rel=1e-12)


def test_bad_input():
    with pytest.raises(SeglabError):
        rand_scores(np.ones((3, 3), int), np.zeros((3, 3), int))  # no foreground
    with pytest.raises(SeglabError):
        rand_scores(np.ones((3, 3), int), np.ones((3, 4), int))
    with pytest.raises(SeglabError):
        rand_scores(np.ones((3, 3)) * 0.5, np.ones((3, 3), int))
    with pytest.raises(SeglabError):
        adapted_rand_error(-np.ones((3, 3), int), np.ones((3, 3), int))
