"""Panoptic quality: against torchmetrics' PanopticQuality, hand-made cases (void, crowd), and the COCO
panoptic PNG round trip."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from seglab.errors import SeglabError
from seglab.errors import InputFileError
from seglab.metrics import (PanopticQuality, coco_panoptic_evaluate, id_to_rgb, read_coco_panoptic, rgb_to_id,
                            segments_from_label_maps)

THINGS, STUFF, VOID = (1, 2), (3, 4), 255


def _scene(rng, shape=(40, 48)):
    sem = ndimage.median_filter(rng.integers(1, 5, shape), 7, mode="nearest")
    sem[rng.random(shape) < 0.03] = VOID
    inst = np.zeros(shape, int)
    for c in THINGS:
        lab, _ = ndimage.label(sem == c)
        inst[sem == c] = lab[sem == c]
    return sem, inst


def _perturb(rng, sem, inst):
    s, i = np.roll(sem, rng.integers(-2, 3), axis=1), np.roll(inst, rng.integers(-2, 3), axis=0)
    s = s.copy()
    s[s == VOID] = 3                       # predictions have no void
    blk = rng.integers(0, 30, 2)
    s[blk[0]:blk[0] + 8, blk[1]:blk[1] + 8] = rng.choice([1, 2, 3, 4])
    i = np.where(np.isin(s, THINGS), i + 1, 0)
    return s, i


def _torchmetrics_pq(pairs):
    from torchmetrics.detection import PanopticQuality as TMPQ

    tm = TMPQ(things=set(THINGS), stuffs=set(STUFF), return_sq_and_rq=True, return_per_class=True)
    for (ps, pi), (gs, gi) in pairs:
        P = torch.from_numpy(np.stack([ps, pi], -1))[None]
        T = torch.from_numpy(np.stack([gs, np.where(np.isin(gs, THINGS), gi, 0)], -1))[None]
        tm.update(P, T)
    return tm.compute().numpy()


@pytest.mark.parametrize("seed", range(3))
def test_matches_torchmetrics(seed):
    rng = np.random.default_rng(seed)
    pairs = []
    pq = PanopticQuality({c: c in THINGS for c in THINGS + STUFF})
    for _ in range(2):
        gs, gi = _scene(rng)
        ps, pi = _perturb(rng, gs, gi)
        pairs.append(((ps, pi), (gs, gi)))
        g_ids, g_segs = segments_from_label_maps(gs, gi, things=THINGS, ignore_index=VOID)
        p_ids, p_segs = segments_from_label_maps(ps, pi, things=THINGS)
        pq.update(p_ids, p_segs, g_ids, g_segs)
    res = pq.compute()
    ref = _torchmetrics_pq(pairs)  # per class (sorted ids) x (pq, sq, rq)
    for k, c in enumerate(sorted(THINGS + STUFF)):
        ours = res["per_class"][c]
        if np.isnan(ours["pq"]):
            continue
        assert [ours["pq"], ours["sq"], ours["rq"]] == pytest.approx(ref[k].tolist(), abs=1e-6), c
    valid = [k for k, c in enumerate(sorted(THINGS + STUFF)) if not np.isnan(res["per_class"][c]["pq"])]
    assert res["all"]["pq"] == pytest.approx(ref[valid, 0].mean(), abs=1e-6)


def test_hand_example_void_and_crowd():
    gt = np.zeros((10, 10), int)
    gt[0:5, 0:5] = 1          # person, matched
    gt[5:10, 5:10] = 2        # person, missed -> FN
    gt[0:5, 5:10] = 3         # crowd of people
    gt[5:10, 0:5] = 4         # sky (stuff)
    gt_segs = {1: {"category_id": 1}, 2: {"category_id": 1}, 3: {"category_id": 1, "iscrowd": 1},
               4: {"category_id": 10}}
    pred = np.zeros((10, 10), int)
    pred[0:5, 0:4] = 1        # IoU 20/25 = 0.8 with gt 1
    pred[0:5, 6:10] = 2       # inside the crowd: ignored, not FP
    pred[5:10, 0:5] = 3       # sky, perfect
    pred[9, 9] = 4            # a tiny person on the missed one: IoU 1/25 -> FP
    pred_segs = {1: 1, 2: 1, 3: 10, 4: 1}
    pq = PanopticQuality({1: True, 10: False}).update(pred, pred_segs, gt, gt_segs).compute()
    person = pq["per_class"][1]
    assert (person["tp"], person["fp"], person["fn"]) == (1, 1, 1)
    assert person["sq"] == pytest.approx(0.8) and person["rq"] == pytest.approx(1 / 2)
    assert person["pq"] == pytest.approx(0.4)
    assert pq["stuff"]["pq"] == pytest.approx(1.0) and pq["things"]["pq"] == pytest.approx(0.4)
    assert pq["all"]["pq"] == pytest.approx(0.7)
    # void pixels of the ground truth do not count against a prediction's IoU
    gt2 = np.zeros((4, 4), int)
    gt2[:, :2] = 1
    p2 = np.ones((4, 4), int)  # covers gt segment + void
    r = PanopticQuality({1: False}).update(p2, {1: 1}, gt2, {1: 1}).compute()
    assert r["per_class"][1]["sq"] == pytest.approx(1.0)


def test_label_divisor_and_png_round_trip(tmp_path, rng):
    from PIL import Image

    sem, inst = _scene(rng)
    ids_a, segs_a = segments_from_label_maps(sem, inst, things=THINGS, ignore_index=VOID)
    combined = np.where(sem == VOID, VOID * 1000, sem * 1000 + inst)
    ids_b, segs_b = segments_from_label_maps(combined, things=THINGS, ignore_index=VOID, label_divisor=1000)
    np.testing.assert_array_equal(ids_a, ids_b)
    assert segs_a == segs_b
    Image.fromarray(id_to_rgb(ids_a)).save(tmp_path / "pan.png")
    info = [{"id": k, "category_id": v["category_id"], "iscrowd": 0} for k, v in segs_a.items()]
    ids_c, segs_c = read_coco_panoptic(tmp_path / "pan.png", info)
    np.testing.assert_array_equal(ids_c, ids_a)
    np.testing.assert_array_equal(rgb_to_id(id_to_rgb(np.array([[0, 1, 300, 70000]]))), [[0, 1, 300, 70000]])
    pq = PanopticQuality({c: c in THINGS for c in THINGS + STUFF}).update(ids_c, segs_c, ids_a, segs_a).compute()
    assert pq["all"]["pq"] == pytest.approx(1.0)


def test_coco_panoptic_folders(tmp_path, rng):
    import json

    from PIL import Image

    cats = [{"id": c, "name": str(c), "isthing": int(c in THINGS)} for c in THINGS + STUFF]
    direct = PanopticQuality({c: c in THINGS for c in THINGS + STUFF})
    gt = {"images": [], "annotations": [], "categories": cats}
    pr = {"annotations": []}
    for d in ("gt", "pred"):
        (tmp_path / d).mkdir()
    for img in range(2):
        gs, gi = _scene(rng)
        ps, pi = _perturb(rng, gs, gi)
        for d, (s_, i_), ign, js in (("gt", (gs, gi), VOID, gt), ("pred", (ps, pi), None, pr)):
            ids, segs = segments_from_label_maps(s_, i_, things=THINGS, ignore_index=ign)
            Image.fromarray(id_to_rgb(ids)).save(tmp_path / d / f"{img}.png")
            js["annotations"].append({"image_id": img, "file_name": f"{img}.png", "segments_info": [
                {"id": k, "category_id": v["category_id"], "iscrowd": 0} for k, v in segs.items()]})
            if d == "gt":
                g_ids, g_segs = ids, segs
            else:
                direct.update(ids, segs, g_ids, g_segs)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(pr))
    res = coco_panoptic_evaluate(tmp_path / "gt.json", tmp_path / "pred.json")  # folders beside the JSON files
    assert res["all"] == direct.compute()["all"] and 0 < res["all"]["pq"] < 1
    pr["annotations"].pop()
    with pytest.raises(InputFileError, match="no annotation for image 1"):
        coco_panoptic_evaluate(gt, pr, tmp_path / "gt", tmp_path / "pred")


def test_bad_input():
    pq = PanopticQuality({1: True})
    ids = np.ones((3, 3), int)
    with pytest.raises(SeglabError, match="unknown category"):
        pq.update(ids, {1: 7}, ids, {1: 1})
    with pytest.raises(SeglabError, match="not in segments_info"):
        pq.update(ids * 2, {1: 1}, ids, {1: 1})
    with pytest.raises(SeglabError):
        pq.update(np.ones((3, 4), int), {1: 1}, ids, {1: 1})
    with pytest.raises(SeglabError):
        rgb_to_id(np.zeros((3, 3)))
