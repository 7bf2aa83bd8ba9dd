"""PanopticQuality on hand-made cases of the COCO panoptic API's rules (panopticapi pq_compute):
a match needs IoU > 0.5 (0.5 itself is not one), the union leaves out the prediction's void pixels,
an unmatched prediction is not an FP when more than half of it is void or same-category crowd, crowd
is never an FN, and the means run over the categories seen. Expected numbers are worked out by hand."""
import numpy as np
import pytest

from seglab.metrics import PanopticQuality

THING, STUFF, OTHER = 1, 2, 3
CATS = {THING: True, STUFF: False, OTHER: True}


def _pq(pred, pred_segs, gt, gt_segs):
    return PanopticQuality(CATS).update(pred, pred_segs, gt, gt_segs).compute()


def _grid(fill, cells):
    """A 4 x 8 map filled with ``fill``, then ``{(rows, cols): id}`` with ``"r0:r1"`` / int keys."""
    m = np.full((4, 8), fill)
    for (r, c), v in cells.items():
        m[_index(r), _index(c)] = v
    return m


def _index(k):
    if isinstance(k, str):
        a, b = k.split(":")
        return slice(int(a), int(b))
    return k


def test_iou_of_exactly_one_half_is_no_match():
    gt = _grid(9, {("0:2", "0:4"): 1})                 # thing: 8 px; stuff 9 elsewhere
    gs = {1: THING, 9: STUFF}
    half = _grid(9, {("0:1", "0:4"): 1})               # 4 px inside: IoU 4 / 8 = 0.5
    r = _pq(half, {1: THING, 9: STUFF}, gt, gs)["per_class"][THING]
    assert (r["tp"], r["fp"], r["fn"]) == (0, 1, 1) and (r["pq"], r["sq"], r["rq"]) == (0.0, 0.0, 0.0)
    more = _grid(9, {("0:1", "0:4"): 1, (1, 0): 1})   # 5 px inside: IoU 5 / 8
    r = _pq(more, {1: THING, 9: STUFF}, gt, gs)["per_class"][THING]
    assert (r["tp"], r["fp"], r["fn"]) == (1, 0, 0)
    assert (r["pq"], r["sq"], r["rq"]) == pytest.approx((5 / 8, 5 / 8, 1.0))
    # stuff: 24 true px, predicted 27 (3 more): IoU 24 / 27
    s = _pq(more, {1: THING, 9: STUFF}, gt, gs)["per_class"][STUFF]
    assert s["sq"] == pytest.approx(24 / 27) and s["tp"] == 1


def test_void_pixels_leave_the_union_and_can_excuse_a_prediction():
    gt = _grid(0, {("0:2", "0:4"): 1, ("2:4", "0:8"): 9})  # void: rows 0-1, cols 4-7
    gs = {1: THING, 9: STUFF}
    # the thing predicted over its 8 px and 4 void px: IoU = 8 / (12 + 8 - 8 - 4) = 1
    pred = _grid(9, {("0:2", "0:4"): 1, ("0:1", "4:8"): 1})
    pred[1, 4:8] = 5                                                   # 4 px, all void: not an FP
    r = _pq(pred, {1: THING, 5: OTHER, 9: STUFF}, gt, gs)
    assert r["per_class"][THING]["sq"] == pytest.approx(1.0) and r["per_class"][THING]["fp"] == 0
    assert np.isnan(r["per_class"][OTHER]["pq"])                       # never counted: left out of the means
    # a 6 px prediction with 3 px on void (exactly half) is an FP; with 4 of 6 it is not
    for on_void, fp in ((3, 1), (4, 0)):
        p = _grid(9, {("0:2", "0:4"): 1})
        p[1, 4:4 + on_void] = 5
        p[2, 0:6 - on_void] = 5
        res = _pq(p, {1: THING, 5: OTHER, 9: STUFF}, gt, gs)["per_class"][OTHER]
        assert res["fp"] == fp, on_void


def test_crowd_regions():
    gt = _grid(9, {("0:2", "0:4"): 1, ("0:2", "4:8"): 7})
    gs = {1: THING, 7: {"category_id": THING, "iscrowd": 1}, 9: STUFF}
    # the crowd is predicted by nothing: no FN for it; a thing prediction on it is excused
    pred = _grid(9, {("0:2", "0:4"): 1, ("0:2", "4:7"): 2})
    r = _pq(pred, {1: THING, 2: THING, 9: STUFF}, gt, gs)["per_class"][THING]
    assert (r["tp"], r["fp"], r["fn"]) == (1, 0, 0) and r["pq"] == pytest.approx(1.0)
    # the same pixels predicted as another thing category are an FP of that category
    r = _pq(pred, {1: THING, 2: OTHER, 9: STUFF}, gt, gs)["per_class"]
    assert r[OTHER]["fp"] == 1 and r[OTHER]["pq"] == 0.0
    # a crowd segment is never matched, even when predicted exactly
    exact = _grid(9, {("0:2", "0:4"): 1, ("0:2", "4:8"): 2})
    r = _pq(exact, {1: THING, 2: THING, 9: STUFF}, gt, gs)["per_class"][THING]
    assert (r["tp"], r["fp"], r["fn"]) == (1, 0, 0)


def test_things_stuff_and_all_are_means_over_seen_categories():
    gt = _grid(9, {("0:2", "0:4"): 1, ("2:4", "0:2"): 2})
    gs = {1: THING, 2: THING, 9: STUFF}
    # thing 1 perfect, thing 2 missed, an OTHER-category FP of 2 px on the stuff
    pred = _grid(9, {("0:2", "0:4"): 1, (0, 7): 3, (1, 7): 3})
    r = _pq(pred, {1: THING, 3: OTHER, 9: STUFF}, gt, gs)
    # THING: TP 1 (IoU 1), FN 1 -> PQ 1 / 1.5. STUFF: the truth is 20 px, the prediction 22 px (the
    # missed thing's 4 px are stuff in it, 2 px went to OTHER), intersection 18: IoU 18 / 24
    assert r["per_class"][THING]["pq"] == pytest.approx(1 / 1.5)
    assert r["per_class"][STUFF]["pq"] == pytest.approx(18 / 24)
    assert r["per_class"][OTHER]["pq"] == 0.0
    assert r["things"]["pq"] == pytest.approx((1 / 1.5 + 0) / 2) and r["things"]["n"] == 2
    assert r["stuff"]["pq"] == pytest.approx(18 / 24) and r["stuff"]["n"] == 1
    assert r["all"]["pq"] == pytest.approx((1 / 1.5 + 0 + 18 / 24) / 3)
