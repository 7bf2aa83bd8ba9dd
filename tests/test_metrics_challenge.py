"""DSB 2018 challenge metric against a plainly written definition, COCO mask AP of the evaluator against
pycocotools run directly on RLE masks, and nuclei PQ on a hand-made case."""
import contextlib
import io

import numpy as np
import pytest

from seglab.errors import ParameterError, SeglabError
from seglab.metrics import CHALLENGE_THRESHOLDS, InstanceEvaluator, challenge_score, iou_matrix


def _random_labels(rng, shape=(48, 56), n=12, drop=0.0):
    lab = np.zeros(shape, np.int64)
    for k in range(1, n + 1):
        if rng.random() < drop:
            continue
        y, x = rng.integers(0, shape[0] - 4), rng.integers(0, shape[1] - 4)
        h, w = rng.integers(4, 15, 2)
        lab[y:y + h, x:x + w] = k * 7  # ids with gaps
    return lab


def _perturb(rng, lab):
    p = np.roll(lab, tuple(rng.integers(-1, 2, 2)), axis=(0, 1))
    p = np.where(rng.random(lab.shape) < 0.05, 0, p)
    p[rng.integers(0, 40):][:4, :5] = 999  # a spurious object
    return p


def _direct_challenge(true, pred):
    """The Kaggle definition written out: object by object, masks compared pixel by pixel."""
    t_ids = [v for v in np.unique(true) if v != 0]
    p_ids = [v for v in np.unique(pred) if v != 0]
    scores = []
    for t in np.arange(0.5, 1.0, 0.05):
        tp = 0
        matched_pred = set()
        for a in t_ids:
            for b in p_ids:
                inter = np.logical_and(true == a, pred == b).sum()
                union = np.logical_or(true == a, pred == b).sum()
                if inter / union > t:
                    tp += 1
                    matched_pred.add(b)
        fn = len(t_ids) - tp
        fp = len(p_ids) - len(matched_pred)
        scores.append(tp / (tp + fp + fn) if tp + fp + fn else 1.0)
    return np.array(scores)


@pytest.mark.parametrize("seed", range(4))
def test_challenge_equals_direct_definition(seed):
    rng = np.random.default_rng(seed)
    true = _random_labels(rng)
    pred = _perturb(rng, true)
    ours = challenge_score(true, pred)
    np.testing.assert_allclose(ours, _direct_challenge(true, pred), atol=1e-12)
    assert 0 < ours.mean() < 1
    assert list(CHALLENGE_THRESHOLDS) == pytest.approx(np.arange(0.5, 1.0, 0.05).tolist())


def test_challenge_hand_case_and_edges():
    true = np.zeros((10, 10), int)
    true[0:4, 0:5] = 1     # 20 px
    true[6:10, 6:10] = 2   # 16 px
    pred = np.zeros_like(true)
    pred[0:4, 0:4] = 5     # IoU 16/20 = 0.8 with object 1
    pred[7:9, 0:2] = 6     # spurious
    # thresholds 0.5..0.75: TP 1, FP 1, FN 1 -> 1/3; 0.8 and above: 0 hits -> 0 (IoU must be > t)
    expected = [1 / 3] * 6 + [0.0] * 4
    np.testing.assert_allclose(challenge_score(true, pred), expected)
    assert challenge_score(np.zeros((3, 3)), np.zeros((3, 3))).tolist() == [1.0] * 10
    assert challenge_score(true, np.zeros_like(true)).tolist() == [0.0] * 10
    iou, t_ids, p_ids = iou_matrix(true, pred)
    assert t_ids.tolist() == [1, 2] and p_ids.tolist() == [5, 6]
    np.testing.assert_allclose(iou, [[0.8, 0.0], [0.0, 0.0]])
    with pytest.raises(ParameterError, match="shape"):
        challenge_score(true, pred[:5])
    with pytest.raises(ParameterError, match=">= 0.5"):
        challenge_score(true, pred, thresholds=[0.3])


def _pycocotools_ap(trues, preds, scores):
    from pycocotools import mask as mu
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, dets = [], [], []
    for img_id, (t, p, s) in enumerate(zip(trues, preds, scores), start=1):
        images.append({"id": img_id, "height": t.shape[0], "width": t.shape[1]})
        for v in np.unique(t)[1:]:
            rle = mu.encode(np.asfortranarray((t == v).astype(np.uint8)))
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": 1, "segmentation": rle,
                         "area": float(mu.area(rle)), "bbox": list(mu.toBbox(rle)), "iscrowd": 0})
        for v in np.unique(p)[1:]:
            rle = mu.encode(np.asfortranarray((p == v).astype(np.uint8)))
            dets.append({"image_id": img_id, "category_id": 1, "segmentation": rle, "score": s[int(v)]})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "n"}]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dets), "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats  # default maxDets (100): these images have fewer detections


def test_evaluator_mask_ap_equals_pycocotools_and_challenge_mean(rng):
    ev = InstanceEvaluator()
    trues, preds, scores = [], [], []
    for _ in range(3):
        t = _random_labels(rng, n=20, drop=0.1)
        p = _perturb(rng, t)
        assert len(np.unique(p)) < 100
        s = {int(v): float(rng.random()) for v in np.unique(p)[1:]}
        ev.update(t, p, scores=s)
        trues.append(t), preds.append(p), scores.append(s)
    res = ev.compute()
    ref = _pycocotools_ap(trues, preds, scores)
    assert res["coco_ap"] == pytest.approx(ref[0], abs=1e-12)
    assert res["coco_ap50"] == pytest.approx(ref[1], abs=1e-12)
    assert res["coco_ap75"] == pytest.approx(ref[2], abs=1e-12)
    assert 0.1 < res["coco_ap"] < 0.95
    per = [_direct_challenge(t, p) for t, p in zip(trues, preds)]
    assert res["challenge"] == pytest.approx(np.mean(per), abs=1e-12)
    assert res["challenge_p50"] == pytest.approx(np.mean([x[0] for x in per]), abs=1e-12)
    assert res["images"] == 3 and len(res["per_image"]) == 3


def test_evaluator_pq_hand_case():
    true = np.zeros((10, 10), int)
    true[0:5, 0:5] = 1          # matched by a 20 px prediction: IoU 0.8
    true[6:10, 6:10] = 2        # missed (FN)
    pred = np.zeros_like(true)
    pred[0:5, 0:4] = 1
    pred[6:8, 0:3] = 2          # on background: FP
    ev = InstanceEvaluator()
    ev.update(true, pred)
    r = ev.compute()
    # TP 1 (IoU 0.8), FP 1, FN 1: SQ 0.8, RQ 1 / (1 + 0.5 + 0.5) = 0.5, PQ 0.4
    assert (r["sq"], r["rq"], r["pq"]) == pytest.approx((0.8, 0.5, 0.4))


def test_evaluator_bad_input():
    ev = InstanceEvaluator()
    with pytest.raises(SeglabError, match="no image"):
        ev.compute()
    with pytest.raises(ParameterError, match="shape"):
        ev.update(np.zeros((4, 4)), np.zeros((4, 5)))
    lab = np.zeros((4, 4), int)
    lab[1:3, 1:3] = 4
    with pytest.raises(ParameterError, match="label 4"):
        ev.update(lab, lab, scores={1: 0.5})


def test_evaluator_takes_instances_with_overlapping_masks():
    from pycocotools import mask as mu

    from seglab.structures import Instances, masks_to_boxes

    true = np.zeros((20, 20), int)
    true[2:10, 2:10], true[12:18, 12:18] = 1, 2
    masks = np.zeros((3, 20, 20), bool)
    masks[0, 2:10, 2:10] = True        # exact, score 0.6
    masks[1, 2:10, 2:9] = True         # a duplicate of object 1 (IoU 7/8), higher score 0.9
    masks[2, 12:18, 13:18] = True      # object 2, IoU 5/6, score 0.3
    inst = Instances((20, 20), masks_to_boxes(masks), scores=[0.6, 0.9, 0.3], classes=[1, 1, 1], masks=masks)
    ev = InstanceEvaluator()
    ev.update(true, inst)
    r = ev.compute()
    # label map by score: the duplicate (0.9) is painted over the exact mask, which keeps one column (8 px)
    lab = inst.to_label_map()
    assert (lab == 2).sum() == 8 and (lab == 1).sum() == 56
    np.testing.assert_allclose(r["per_threshold"]["0.50"], challenge_score(true, lab)[0])
    # COCO AP sees the three masks as given: at IoU 0.5 the duplicate (first by score) is a TP, the exact
    # mask then an FP, object 2 a TP: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> AP50 = 101-point mean
    rle = [mu.encode(np.asfortranarray(m.astype(np.uint8))) for m in masks]
    assert mu.iou([rle[1]], [rle[0]], [0])[0, 0] == pytest.approx(7 / 8)
    recall_points = np.linspace(0, 1, 101)
    expected = np.where(recall_points <= 0.5, 1.0, 2 / 3).mean()
    assert r["coco_ap50"] == pytest.approx(expected, abs=1e-12)
