"""seglab.bsds metrics against their definitions on small hand-made and random cases, and bad input."""
import itertools
import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching, min_weight_full_bipartite_matching

from seglab import bsds
from seglab.bsds import boundary as bmod
from seglab.bsds.evaluate import _average_precision, _max_f
from seglab.errors import InputFileError, SeglabError


# ---------------------------------------------------------------------------------------------------
# region metrics
# ---------------------------------------------------------------------------------------------------
def _rand_index_pairs(a, b):
    a, b = a.ravel(), b.ravel()
    agree = total = 0
    for i, j in itertools.combinations(range(a.size), 2):
        agree += (a[i] == a[j]) == (b[i] == b[j])
        total += 1
    return agree / total


def _vi_definition(a, b):
    a, b = a.ravel(), b.ravel()
    n = a.size
    h = lambda labels: -sum((c / n) * math.log2(c / n) for c in np.unique(labels, return_counts=True)[1])
    joint = h(a * 1000 + b)
    return 2 * joint - h(a) - h(b)  # H(A|B) + H(B|A)


def _covering_definition(seg, gts):
    num = den = 0.0
    for g in gts:
        for r in np.unique(g):
            if r == 0:
                continue
            R = g == r
            best = max(((R & (seg == s)).sum() / (R | (seg == s)).sum()) for s in np.unique(seg) if s != 0)
            num += R.sum() * best
            den += R.sum()
    return num / den


def test_identical_segmentations_are_perfect(rng):
    seg = rng.integers(1, 5, (12, 9))
    assert bsds.covering(seg, [seg]) == pytest.approx(1.0)
    assert bsds.rand_index(seg, seg) == pytest.approx(1.0)
    assert bsds.probabilistic_rand_index(seg, [seg, seg]) == pytest.approx(1.0)
    assert bsds.variation_of_information(seg, seg) == pytest.approx(0.0, abs=1e-12)


def test_known_two_by_two_case():
    gt = np.array([[1, 1], [2, 2]])
    seg = np.ones((2, 2), int)
    assert bsds.rand_index(seg, gt) == pytest.approx(1 / 3)   # only the 2 within-half pairs of 6 agree
    assert bsds.variation_of_information(seg, gt) == pytest.approx(1.0)  # H(gt) = 1 bit
    assert bsds.covering(seg, [gt]) == pytest.approx(0.5)     # each half: IoU 2/4


@pytest.mark.parametrize("seed", range(4))
def test_region_metrics_match_definitions(seed):
    rng = np.random.default_rng(seed)
    seg = ndimage.label(rng.random((7, 8)) < 0.6)[0] + rng.integers(0, 2, (7, 8)) * 7 + 1
    gts = [rng.integers(1, 4, (7, 8)), rng.integers(1, 6, (7, 8))]
    assert bsds.rand_index(seg, gts[0]) == pytest.approx(_rand_index_pairs(seg, gts[0]), abs=1e-12)
    assert bsds.variation_of_information(seg, gts[1]) == pytest.approx(_vi_definition(seg, gts[1]), abs=1e-9)
    assert bsds.covering(seg, gts) == pytest.approx(_covering_definition(seg, gts), abs=1e-12)
    assert bsds.probabilistic_rand_index(seg, gts) == pytest.approx(
        np.mean([_rand_index_pairs(seg, g) for g in gts]), abs=1e-12)


def test_label_zero_is_unlabelled_for_covering_but_a_label_for_rand():
    gt = np.array([[1, 1, 2, 2]])
    seg = np.array([[0, 0, 1, 1]])
    # official covering: region 0 is not a region, so gt region 1 has no match
    assert bsds.covering(seg, [gt]) == pytest.approx(0.5)
    assert bsds.rand_index(seg, gt) == pytest.approx(1.0)


def test_covering_best_tracks_each_human_region_over_segmentations():
    gt = np.array([[1, 1, 2, 2]])
    rgt = bsds.RegionGroundTruth([gt])
    rgt.score(np.array([[1, 1, 2, 3]]))   # region 1 perfect
    rgt.score(np.array([[1, 2, 3, 3]]))   # region 2 perfect
    assert rgt.best_count() / rgt.sum_r == pytest.approx(1.0)


def test_ucm_segmentation_is_8_connected_labelling():
    ucm = np.zeros((5, 5))
    ucm[2, :] = 0.5      # a horizontal wall: two regions below 0.5, one at or above
    assert bsds.ucm_segmentation(ucm, 0.4).max() == 2
    assert bsds.ucm_segmentation(ucm, 0.5).max() == 1
    ucm = np.full((5, 5), 0.9)
    ucm[1, 1] = ucm[3, 3] = ucm[2, 2] = 0   # pixel centres touching diagonally through the corner
    assert bsds.ucm_segmentation(ucm, 0.1).tolist() == [[1, 0], [0, 1]]


# ---------------------------------------------------------------------------------------------------
# boundary benchmark
# ---------------------------------------------------------------------------------------------------
def _seg2bdry_official(seg):
    """The official seg2bdry.m, step by step on the doubled grid (1-based indices translated)."""
    tx, ty = seg.shape
    b = np.zeros((2 * tx + 1, 2 * ty + 1))
    ev = np.zeros((tx, ty), bool)
    ev[:-1, :] = seg[:-1, :] != seg[1:, :]
    eh = np.zeros((tx, ty), bool)
    eh[:, :-1] = seg[:, :-1] != seg[:, 1:]
    b[2::2, 1::2] = ev
    b[1::2, 2::2] = eh
    b[2:-1:2, 2:-1:2] = np.maximum(np.maximum(eh[:-1, :-1], eh[1:, :-1]), np.maximum(ev[:-1, :-1], ev[:-1, 1:]))
    b[0, :] = b[1, :]
    b[:, 0] = b[:, 1]
    b[-1, :] = b[-2, :]
    b[:, -1] = b[:, -2]
    return b[2::2, 2::2] > 0


@pytest.mark.parametrize("seed", range(3))
def test_seg2bdry_matches_official_steps(seed):
    rng = np.random.default_rng(seed)
    seg = rng.integers(0, 3, (9, 11))
    np.testing.assert_array_equal(bsds.seg2bdry(seg), _seg2bdry_official(seg))


@pytest.mark.parametrize("seed", range(3))
def test_thin_equals_scikit_image(seed):
    from skimage.morphology import thin as sk_thin

    rng = np.random.default_rng(seed)
    m = ndimage.binary_dilation(rng.random((60, 70)) < 0.04, iterations=2)
    np.testing.assert_array_equal(bsds.thin(m), sk_thin(m))


def test_correspondence_small_cases():
    shape = (100, 100)  # radius 0.0075 * 141.4 = 1.06 px
    gt = np.zeros(shape, bool)
    gt[50, 50] = True
    for dy, dx, hit in [(0, 0, True), (1, 0, True), (0, -1, True), (1, 1, False), (2, 0, False)]:
        pred = np.zeros(shape, bool)
        pred[50 + dy, 50 + dx] = True
        m1, m2 = bsds.correspond_pixels(pred, gt)
        assert m1.sum() == m2.sum() == int(hit)
    # one-to-one: two predicted pixels next to one human pixel, only one is matched
    pred = np.zeros(shape, bool)
    pred[49, 50] = pred[51, 50] = True
    m1, m2 = bsds.correspond_pixels(pred, gt)
    assert (m1.sum(), m2.sum()) == (1, 1)


def test_correspondence_prefers_the_cheaper_assignment():
    gt = np.zeros((300, 300), bool)   # radius 3.18 px
    gt[100, 100] = True
    pred = np.zeros_like(gt)
    pred[100, 103] = pred[100, 101] = True
    m1, _ = bsds.correspond_pixels(pred, gt)
    assert m1[100, 101] and not m1[100, 103]
    # a greedy nearest match would strand a pixel; the optimal assignment matches both
    gt[100, 103] = True
    pred = np.zeros_like(gt)
    pred[100, 101] = pred[100, 98] = True   # 98 reaches only gt 100; 101 reaches both
    m1, m2 = bsds.correspond_pixels(pred, gt)
    assert m1.sum() == 2 and m2.sum() == 2


def _edges(b1, b2, radius):
    y1, x1 = np.nonzero(b1)
    y2, x2 = np.nonzero(b2)
    d = np.hypot(y1[:, None] - y2[None], x1[:, None] - x2[None])
    i, j = np.nonzero(d <= radius)
    return len(y1), len(y2), i, j, np.rint(d[i, j] * 100).astype(np.int64)


@pytest.mark.parametrize("seed", range(5))
def test_matching_is_optimal_against_scipy(seed):
    """Cardinality equals Hopcroft-Karp's maximum and the cost equals an exact LAPJV solution of the
    official objective (sum of distances + outlier cost per unmatched pixel)."""
    rng = np.random.default_rng(seed)
    shape = (40, 50)
    gt = ndimage.binary_dilation(rng.random(shape) < 0.02, iterations=1) & (rng.random(shape) < 0.7)
    pred = ndimage.shift(gt, (1, -1), order=0) | (rng.random(shape) < 0.05)
    radius = bmod.match_radius(shape)
    n1, n2, i, j, w = _edges(pred, gt, radius)
    g = bsds.GroundTruthBoundary(gt)
    ys, xs = np.nonzero(pred)
    m1, m2 = g.match(ys, xs)
    k = int((m1 >= 0).sum())
    assert k == int((m2 >= 0).sum())
    assert np.all(m2[m1[m1 >= 0]] == np.nonzero(m1 >= 0)[0])
    bip = csr_matrix((np.ones(len(i)), (i, j)), shape=(n1, n2))
    assert k == int((maximum_bipartite_matching(bip, perm_type="column") >= 0).sum())
    cost_of = {(a, b): c for a, b, c in zip(i, j, w)}
    ours = sum(cost_of[(a, m1[a])] for a in range(n1) if m1[a] >= 0) + g.outlier * (n1 + n2 - k)
    # exact reference: rows = pred pixels + one outlier per gt pixel, columns = gt pixels + one outlier per
    # pred pixel; outlier-outlier edges (cost ow, as officially) mirror the real ones, so a full assignment
    # costs sum(w) + ow * (n1 + n2 - k); +1 on every edge keeps zero costs explicit
    rows = np.concatenate([i, np.arange(n1), n1 + np.arange(n2), n1 + j])
    cols = np.concatenate([j, n2 + np.arange(n1), np.arange(n2), n2 + i])
    cost = np.concatenate([w, np.full(n1 + n2, g.outlier), np.full(len(i), g.outlier)]) + 1
    r, c = min_weight_full_bipartite_matching(csr_matrix((cost, (rows, cols)), shape=(n1 + n2, n1 + n2)))
    ref = csr_matrix((cost, (rows, cols)), shape=(n1 + n2, n1 + n2))[r, c].sum() - (n1 + n2)
    assert ours == ref


def test_boundary_counts_of_perfect_prediction():
    seg = np.zeros((30, 40), int)
    seg[:, 20:] = 1
    seg[15:, :] = 2
    gt = bsds.seg2bdry(seg)
    cnt_r, sum_r, cnt_p, sum_p = bsds.boundary_counts(gt, [bsds.GroundTruthBoundary(gt)] * 2)
    assert cnt_r == sum_r == 2 * gt.sum()
    assert cnt_p == sum_p


def test_max_f_interpolates_and_ap():
    thr = np.array([0.25, 0.5, 0.75])
    r = np.array([0.9, 0.6, 0.2])
    p = np.array([0.4, 0.8, 0.95])
    t, rr, pp, f = _max_f(thr, r, p)
    assert f >= 2 * 0.6 * 0.8 / 1.4 - 1e-12
    assert f == pytest.approx(2 * rr * pp / (rr + pp))
    # AP: the interpolated precision over recall 0.2..0.9 at steps of 0.01
    grid = np.round(np.arange(0, 1.0001, 0.01), 10)
    inside = grid[(grid >= 0.2) & (grid <= 0.9)]
    assert _average_precision(r, p) == pytest.approx(np.interp(inside, r[::-1], p[::-1]).sum() * 0.01)
    assert _average_precision(np.array([0.5, 0.5]), p[:2]) == 0.0


# ---------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------
def test_missing_folders(tmp_path):
    with pytest.raises(InputFileError, match="no such folder"):
        bsds.evaluate_folder(tmp_path / "nope", tmp_path)
    with pytest.raises(InputFileError, match="no ground-truth"):
        bsds.evaluate_folder(tmp_path, tmp_path)


def _cell(*arrays):
    out = np.empty((1, len(arrays)), dtype=object)
    for k, a in enumerate(arrays):
        out[0, k] = a
    return out


def test_size_mismatch_and_bad_files(tmp_path):
    from scipy.io import savemat

    gt = bsds.GroundTruth([np.ones((6, 8), np.int64)], [np.zeros((6, 8), bool)])
    pred = bsds.from_segmentations([np.zeros((6, 7), int)])
    with pytest.raises(SeglabError, match="does not match"):
        bsds.evaluate_image(pred, gt, name="img1")
    with pytest.raises(SeglabError):
        bsds.from_segmentations([np.zeros((6, 8), int), np.zeros((5, 8), int)])
    savemat(tmp_path / "even.mat", {"ucm2": np.zeros((6, 9))})
    with pytest.raises(InputFileError, match="2H\\+1"):
        bsds.read_prediction(tmp_path / "even.mat")
    savemat(tmp_path / "neg.mat", {"segs": _cell(-np.ones((3, 3)))})
    with pytest.raises(InputFileError, match="non-negative"):
        bsds.read_prediction(tmp_path / "neg.mat")
    (tmp_path / "junk.mat").write_text("not a mat file")
    with pytest.raises(InputFileError, match="junk.mat"):
        bsds.read_ground_truth(tmp_path / "junk.mat")
    (tmp_path / "empty.mat").write_bytes(b"")
    with pytest.raises(InputFileError, match="empty"):
        bsds.read_prediction(tmp_path / "empty.mat")
    with pytest.raises(InputFileError, match="unknown result format"):
        bsds.read_prediction(tmp_path / "x.jpg")
    with pytest.raises(SeglabError, match="nthresh"):
        bsds.thresholds(0)


def test_missing_result_is_named(tmp_path):
    from scipy.io import savemat

    seg = np.ones((4, 5), np.uint16)
    gt = np.empty((1, 1), dtype=object)
    gt[0, 0] = {"Segmentation": seg, "Boundaries": np.zeros((4, 5), np.uint8)}
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    for name in ("a", "b"):
        savemat(tmp_path / "gt" / f"{name}.mat", {"groundTruth": gt})
    savemat(tmp_path / "pred" / "a.mat", {"segs": _cell(seg)})
    with pytest.raises(InputFileError, match="first: b"):
        bsds.evaluate_folder(tmp_path / "pred", tmp_path / "gt")
    res, summary = bsds.evaluate_folder(tmp_path / "pred", tmp_path / "gt", allow_missing=True)
    assert summary["images"] == 1 and summary["region"]["covering"]["ods"] == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------------
# hierarchies from seglab.classical.rag
# ---------------------------------------------------------------------------------------------------
def test_rag_hierarchy_scored_through_its_ucm2_equals_its_cuts():
    rag = pytest.importorskip("seglab.classical.rag")
    import skimage.data

    image = skimage.data.astronaut()[100:160:2, 150:230:2].astype(np.float32) / 255
    h = rag.rag_hierarchy(image, n_segments=40)
    gts = [rag.over_segmentation(image, 6), rag.over_segmentation(image, 12)]
    gts = [g + 1 for g in gts]
    thr = np.quantile(h.heights, [0.2, 0.5, 0.8, 0.95])
    pred = bsds.from_hierarchy(h, thresholds=thr)
    gt = bsds.GroundTruth(gts, [bsds.seg2bdry(g) for g in gts])
    via_ucm = bsds.evaluate_image(pred, gt, boundary=False)
    flat = bsds.evaluate_image(bsds.from_segmentations([h.cut(t) for t in thr], thr), gt, boundary=False)
    np.testing.assert_allclose(via_ucm.region, flat.region, rtol=1e-12)
    # default: heights scaled to [0, 1], official thresholds
    pred = bsds.from_hierarchy(h, nthresh=9)
    assert pred.data.max() == pytest.approx(1.0) and len(pred.thresholds) == 9
    res = bsds.evaluate_image(pred, gt)
    assert res.region.shape == (9, 7) and res.boundary.shape == (9, 4)


def test_sparse_label_values_are_renumbered():
    gt = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])
    seg = np.array([[0, 0, 7, 7], [0, 0, 10**9, 10**9]])
    small = np.array([[0, 0, 1, 1], [0, 0, 2, 2]])
    rgt = bsds.RegionGroundTruth([gt])
    np.testing.assert_allclose(rgt.score(seg), bsds.RegionGroundTruth([gt]).score(small))
