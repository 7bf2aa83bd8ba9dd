"""Keypoint metrics: OKS AP against pycocotools, PCK / mean error by hand, point matching by brute force."""
import contextlib
import copy
import io
import itertools
import json

import numpy as np
import pytest

from seglab.errors import ParameterError, SeglabError
from seglab.metrics.keypoints import (COCO_PERSON_SIGMAS, OKS_STAT_NAMES, match_points, mean_pixel_error, oks,
                                      oks_evaluate, pck, point_detection_scores)


# -- OKS AP against pycocotools ---------------------------------------------------------------------------
def _pycocotools_stats(gt, results, sigmas=None):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        cgt = COCO()
        cgt.dataset = copy.deepcopy(gt)
        cgt.createIndex()
        cdt = cgt.loadRes(copy.deepcopy(results))
        ev = COCOeval(cgt, cdt, "keypoints")
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.asarray(sigmas)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return dict(zip(OKS_STAT_NAMES, ev.stats)), ev


def _person(rng, ann_id, image_id, k=17, invisible=0.3, scale=None, crowd=0, cat=1):
    """A random person: keypoints in a box, some absent (v = 0, coordinates 0 as in COCO)."""
    w, h = scale or rng.uniform(20, 160, size=2)
    x0, y0 = rng.uniform(0, 300, size=2)
    xs, ys = x0 + rng.uniform(0, w, k), y0 + rng.uniform(0, h, k)
    v = np.where(rng.random(k) < invisible, 0, rng.choice([1, 2], k))
    kp = np.stack([np.where(v > 0, xs, 0), np.where(v > 0, ys, 0), v], 1)
    return {"id": ann_id, "image_id": image_id, "category_id": cat, "keypoints": kp.reshape(-1).round(2).tolist(),
            "num_keypoints": int((v > 0).sum()), "bbox": [x0, y0, w, h], "area": float(w * h * 0.7),
            "iscrowd": crowd}


def _detection(rng, ann, noise, score):
    kp = np.asarray(ann["keypoints"], float).reshape(-1, 3)
    x0, y0, w, h = ann["bbox"]
    xy = np.where(kp[:, 2:3] > 0, kp[:, :2], [x0 + w / 2, y0 + h / 2]) + rng.normal(0, noise, (len(kp), 2))
    out = np.concatenate([xy, np.ones((len(kp), 1))], 1)
    return {"image_id": ann["image_id"], "category_id": ann["category_id"], "keypoints": out.reshape(-1).tolist(),
            "score": float(score)}


def _case(seed, k=17, n_images=4, cats=(1,)):
    rng = np.random.default_rng(seed)
    gt = {"images": [{"id": i, "width": 480, "height": 480} for i in range(1, n_images + 1)],
          "categories": [{"id": c, "name": f"c{c}", "keypoints": [f"k{j}" for j in range(k)],
                          "skeleton": [[1, 2]]} for c in cats], "annotations": []}
    res = []
    aid = 1
    for img in range(1, n_images + 1):
        for _ in range(rng.integers(0, 5)):
            ann = _person(rng, aid, img, k, crowd=int(rng.random() < 0.1), cat=int(rng.choice(cats)))
            aid += 1
            gt["annotations"].append(ann)
            if rng.random() < 0.75:  # some annotations are missed
                res.append(_detection(rng, ann, rng.uniform(0.5, 12), rng.random()))
        for _ in range(rng.integers(0, 3)):  # false positives
            fake = _person(rng, 0, img, k, invisible=0.0, cat=int(rng.choice(cats)))
            res.append(_detection(rng, fake, 1.0, rng.random()))
    return gt, res


@pytest.mark.parametrize("seed", range(6))
def test_oks_ap_equals_pycocotools_random_cases(seed):
    gt, res = _case(seed, cats=(1, 2) if seed % 2 else (1,))
    ref, _ = _pycocotools_stats(gt, res)
    ours = oks_evaluate(gt, res)["stats"]
    for name in OKS_STAT_NAMES:
        assert ours[name] == pytest.approx(ref[name], abs=1e-12), name


def test_oks_ap_hand_made_crowd_invisible_and_missed():
    """Two images: a crowd region that absorbs a detection, a person without labelled keypoints (ignored),
    a missed person, a duplicate detection and a perfect one."""
    kp = lambda pts: [c for x, y, v in pts for c in (x, y, v)]  # noqa: E731
    a = [(10, 10, 2), (20, 10, 2), (15, 20, 1), (0, 0, 0)] + [(0, 0, 0)] * 13
    b = [(110, 110, 2), (120, 112, 2), (115, 125, 2), (118, 130, 2)] + [(0, 0, 0)] * 13
    gt = {"images": [{"id": 1}, {"id": 2}], "categories": [{"id": 1, "name": "person"}], "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "keypoints": kp(a), "num_keypoints": 3,
         "bbox": [5, 5, 20, 20], "area": 400.0, "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 1, "keypoints": kp([(0, 0, 0)] * 17), "num_keypoints": 0,
         "bbox": [200, 200, 40, 80], "area": 3200.0, "iscrowd": 0},
        {"id": 3, "image_id": 1, "category_id": 1, "keypoints": kp(b), "num_keypoints": 4,
         "bbox": [100, 100, 30, 40], "area": 1200.0, "iscrowd": 1},
        {"id": 4, "image_id": 2, "category_id": 1, "keypoints": kp(b), "num_keypoints": 4,
         "bbox": [100, 100, 30, 40], "area": 1200.0, "iscrowd": 0},
        {"id": 5, "image_id": 2, "category_id": 1, "keypoints": kp(a), "num_keypoints": 3,
         "bbox": [5, 5, 20, 20], "area": 400.0, "iscrowd": 0},  # missed
    ]}
    near = lambda pts, d: kp([(x + d, y - d, 1) for x, y, _ in pts])  # noqa: E731
    res = [{"image_id": 1, "category_id": 1, "keypoints": near(a, 1.0), "score": 0.9},
           {"image_id": 1, "category_id": 1, "keypoints": near(a, 0.5), "score": 0.8},   # duplicate
           {"image_id": 1, "category_id": 1, "keypoints": near(b, 0.0), "score": 0.95},  # on the crowd
           {"image_id": 1, "category_id": 1, "keypoints": near([(210, 220, 2)] * 17, 0), "score": 0.7},
           {"image_id": 2, "category_id": 1, "keypoints": near(b, 0.0), "score": 0.6}]
    ref, _ = _pycocotools_stats(gt, res)
    ours = oks_evaluate(gt, res)["stats"]
    for name in OKS_STAT_NAMES:
        assert ours[name] == pytest.approx(ref[name], abs=1e-12), name
    assert 0 < ours["AP"] < 1  # the case is neither trivial nor empty


def test_oks_ap_any_k_with_sigmas_equals_pycocotools():
    gt, res = _case(7, k=5, n_images=5)
    sig = np.array([0.05, 0.07, 0.1, 0.04, 0.08])
    ref, _ = _pycocotools_stats(gt, res, sig)
    ours = oks_evaluate(gt, res, sigmas=sig)["stats"]
    assert [ours[n] for n in OKS_STAT_NAMES] == pytest.approx([ref[n] for n in OKS_STAT_NAMES], abs=1e-12)
    with pytest.raises(ParameterError, match="sigmas"):
        oks_evaluate(gt, res)


def test_oks_matrix_equals_pycocotools_compute_oks():
    gt, res = _case(3, n_images=1)
    _, ev = _pycocotools_stats(gt, res)
    anns = [a for a in gt["annotations"] if a["image_id"] == 1]
    dets = sorted([r for r in res if r["image_id"] == 1], key=lambda r: -r["score"])
    if not anns or not dets:
        pytest.skip("random case without annotations or detections in image 1")
    ours = oks([np.reshape(d["keypoints"], (-1, 3)) for d in dets], [np.reshape(a["keypoints"], (-1, 3)) for a in anns],
               [a["area"] for a in anns], [a["bbox"] for a in anns], COCO_PERSON_SIGMAS)
    np.testing.assert_allclose(ours, ev.ious[(1, 1)], rtol=0, atol=1e-12)


def test_oks_evaluate_bad_input():
    gt, res = _case(1)
    bad = copy.deepcopy(res)
    bad[0]["keypoints"] = bad[0]["keypoints"][:-3]
    with pytest.raises(SeglabError, match="result 0"):
        oks_evaluate(gt, bad)
    bad = copy.deepcopy(res)
    bad[0]["image_id"] = 999
    with pytest.raises(SeglabError, match="999"):
        oks_evaluate(gt, bad)
    bad = copy.deepcopy(gt)
    bad["annotations"][0]["keypoints"][0] = float("nan")
    with pytest.raises(SeglabError, match=f"annotation {bad['annotations'][0]['id']}"):
        oks_evaluate(bad, res)


# -- PCK and mean pixel error -----------------------------------------------------------------------------
def test_pck_and_mean_error_by_hand():
    gt = np.array([[[0, 0], [10, 0], [0, 10]], [[5, 5], [6, 6], [7, 7]]], float)
    pred = gt + np.array([[[3, 4], [0, 1], [0, 30]], [[0, 0], [1, 0], [9, 9]]], float)
    vis = np.array([[1, 1, 0], [1, 1, 1]])
    # distances: 5, 1, (30, invisible); 0, 1, 12.73
    assert pck(pred, gt, 2.0, visible=vis) == pytest.approx(3 / 5)
    assert pck(pred, gt, 5.0, visible=vis) == pytest.approx(4 / 5)
    assert pck(pred, gt, 5.0) == pytest.approx(4 / 6)
    # normalised: threshold 0.5 of lengths (10, 2): radii 5 and 1
    assert pck(pred, gt, 0.5, visible=vis, normalize=[10, 2]) == pytest.approx(4 / 5)
    assert mean_pixel_error(pred, gt, visible=vis) == pytest.approx((5 + 1 + 0 + 1 + np.hypot(9, 9)) / 5)
    assert np.isnan(pck(pred, gt, 1.0, visible=np.zeros((2, 3))))
    with pytest.raises(ParameterError):
        pck(pred, gt[:, :2], 1.0)
    with pytest.raises(ParameterError, match="normalize"):
        pck(pred, gt, 1.0, normalize=[1, 2, 3])


# -- point matching ---------------------------------------------------------------------------------------
def _brute_force(p, g, r):
    """Most matches within r, then least total distance, by enumerating every partial matching."""
    d = np.hypot(*(p[:, None, :] - g[None, :, :]).transpose(2, 0, 1))
    best = (0, 0.0)
    for k in range(1, min(len(p), len(g)) + 1):
        for rows in itertools.combinations(range(len(p)), k):
            for cols in itertools.permutations(range(len(g)), k):
                dist = d[list(rows), list(cols)]
                if (dist <= r).all() and (k > best[0] or (k == best[0] and dist.sum() < best[1] - 1e-12)):
                    best = (k, dist.sum())
    return best


@pytest.mark.parametrize("seed", range(25))
def test_match_points_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    p, g = rng.uniform(0, 10, (rng.integers(0, 6), 2)), rng.uniform(0, 10, (rng.integers(0, 6), 2))
    r = float(rng.uniform(1, 5))
    pi, gi, dist = match_points(p, g, r)
    n, total = _brute_force(p, g, r)
    assert len(dist) == n
    assert dist.sum() == pytest.approx(total, abs=1e-9)
    assert len(set(pi)) == len(pi) and len(set(gi)) == len(gi)
    np.testing.assert_allclose(dist, np.hypot(*(p[pi] - g[gi]).T))
    assert (dist <= r).all()


def test_point_detection_scores_by_hand():
    gt = [np.array([[10, 10], [20, 20], [30, 30]]), np.array([[5, 5]])]
    pred = [np.array([[11, 10], [20, 24], [100, 100]]), np.zeros((0, 2))]
    s3 = point_detection_scores(pred, gt, 3)
    assert (s3["tp"], s3["fp"], s3["fn"]) == (1, 2, 3)
    assert s3["precision"] == pytest.approx(1 / 3) and s3["recall"] == pytest.approx(1 / 4)
    assert s3["f1"] == pytest.approx(2 / 7) and s3["mean_error"] == pytest.approx(1.0)
    s6 = point_detection_scores(pred, gt, 6)
    assert (s6["tp"], s6["fp"], s6["fn"]) == (2, 1, 2) and s6["mean_error"] == pytest.approx(2.5)
    with pytest.raises(ParameterError, match="NaN"):
        point_detection_scores(np.array([[np.nan, 1]]), gt[1], 3)


def test_score_keypoint_results_picks_keypoints(tmp_path):
    from seglab.metrics.keypoints import holds_keypoints, score_keypoint_results

    gt, res = _case(2)
    path = tmp_path / "res.json"
    path.write_text(json.dumps(res))
    assert holds_keypoints(path) and holds_keypoints(res)
    out = score_keypoint_results(gt, path)
    assert out["stats"] == oks_evaluate(gt, res)["stats"]
    assert out["summary"].startswith("COCO keypoints (OKS): AP ") and "\n" not in out["summary"]
    boxes = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1.0}]
    assert not holds_keypoints(boxes) and score_keypoint_results(gt, boxes) is None


def test_oks_ap_more_detections_than_max_dets_equals_pycocotools():
    rng = np.random.default_rng(11)
    gt = {"images": [{"id": 1}, {"id": 2}], "categories": [{"id": 1, "name": "person"}], "annotations": []}
    res = []
    for n in range(12):
        ann = _person(rng, n + 1, 1 + n % 2, scale=tuple(rng.uniform(30, 150, 2)))
        gt["annotations"].append(ann)
        for _ in range(3):  # 18 detections per image, plus false positives: over the 20 kept
            res.append(_detection(rng, ann, rng.uniform(0.5, 6), rng.random()))
    for img in (1, 2):
        for _ in range(5):
            res.append(_detection(rng, _person(rng, 0, img), 1.0, rng.random()))
    ref, _ = _pycocotools_stats(gt, res)
    ours = oks_evaluate(gt, res)["stats"]
    assert [ours[n] for n in OKS_STAT_NAMES] == pytest.approx([ref[n] for n in OKS_STAT_NAMES], abs=1e-12)
    assert oks_evaluate(gt, res, max_dets=100)["stats"]["AR"] >= ours["AR"]


def test_seglab_score_picks_the_keypoint_evaluation(tmp_path, capsys):
    """``seglab score --coco-gt --coco-pred`` with keypoint results reports OKS AP equal to pycocotools."""
    from seglab.cli.main import main

    gt, results = _case(7)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(results))
    out = tmp_path / "scores.json"
    assert main(["score", "--coco-gt", str(tmp_path / "gt.json"), "--coco-pred", str(tmp_path / "res.json"),
                 "--json", str(out)]) == 0
    assert "COCO keypoints (OKS)" in capsys.readouterr().out
    got = json.loads(out.read_text())["coco_keypoints"]
    want, _ = _pycocotools_stats(gt, results)
    for name in OKS_STAT_NAMES:
        assert got[name] == pytest.approx(want[name], abs=1e-12)
