"""COCO AP wrapper: equal to pycocotools' COCOeval run directly, per-class table consistent with the
headline AP, class confusion on a hand-made case, label-map conversion, bad input."""
import contextlib
import copy
import io
import json

import numpy as np
import pytest
from scipy import ndimage

from seglab.errors import InputFileError, SeglabError
from seglab.metrics import coco_evaluate, instances_from_label_map

CATS = [{"id": 1, "name": "cell"}, {"id": 2, "name": "nucleus"}, {"id": 5, "name": "debris"}]


def _dataset(rng, n_images=3, shape=(64, 80)):
    images, anns, preds = [], [], []
    for img_id in range(1, n_images + 1):
        inst = np.zeros(shape, int)
        cats = {}
        for k in range(1, 7):
            y, x = rng.integers(5, shape[0] - 15), rng.integers(5, shape[1] - 15)
            h, w = rng.integers(4, 14, 2)
            inst[y:y + h, x:x + w] = k
            cats[k] = int(rng.choice([1, 2, 5]))
        cats = {k: v for k, v in cats.items() if (inst == k).any()}
        images.append({"id": img_id, "height": shape[0], "width": shape[1]})
        anns += instances_from_label_map(inst, cats, img_id, start_id=len(anns) + 1)
        # predictions: dilated / shifted copies, some with the wrong class, plus a spurious one
        pred = np.roll(inst, rng.integers(-2, 3), axis=1)
        pred = np.where(pred == 0, ndimage.grey_dilation(pred, size=3) * (rng.random(shape) < 0.5), pred)
        pred[2:6, 2:6] = 99
        pcats = {k: (v if rng.random() < 0.8 else int(rng.choice([1, 2, 5]))) for k, v in cats.items()}
        pcats[99] = 1
        labels = [int(v) for v in np.unique(pred) if v != 0]
        scores = {k: float(rng.random()) for k in labels}
        preds += instances_from_label_map(pred, pcats, img_id, scores=scores)
    return {"images": images, "annotations": anns, "categories": CATS}, preds


def _cocoeval(gt, preds, iou_type):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        c = COCO()
        c.dataset = copy.deepcopy(gt)
        c.createIndex()
        d = c.loadRes(copy.deepcopy(preds))
        ev = COCOeval(c, d, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_matches_cocoeval_and_per_class_table(rng, tmp_path, iou_type):
    gt, preds = _dataset(rng)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(preds))
    res = coco_evaluate(tmp_path / "gt.json", tmp_path / "pred.json", iou_type)
    ref = _cocoeval(gt, preds, iou_type)
    np.testing.assert_allclose(list(res["stats"].values()), ref, atol=1e-12)
    assert 0.05 < res["stats"]["AP"] < 0.95  # a non-trivial case
    # COCO's AP is the mean over categories of the per-class AP; same for AP50 and AP75
    for key, idx in (("AP", 0), ("AP50", 1), ("AP75", 2)):
        per = [v[key] for v in res["per_class"].values() if not np.isnan(v[key])]
        assert np.mean(per) == pytest.approx(ref[idx], abs=1e-12)
    assert sum(v["n_gt"] for v in res["per_class"].values()) == len(gt["annotations"])
    assert sum(v["n_pred"] for v in res["per_class"].values()) == len(preds)
    conf = res["confusion"]
    assert conf.shape == (4, 4) and conf[3, 3] == 0
    assert conf[:3].sum() == len(gt["annotations"])   # every true instance matched or missed once
    assert conf[:, :3].sum() == len(preds)            # every detection matched or background once


def test_perfect_predictions_and_confusion_hand_case():
    inst = np.zeros((30, 30), int)
    inst[2:10, 2:10] = 1
    inst[15:25, 15:28] = 2
    inst[2:8, 20:28] = 3
    gt = {"images": [{"id": 7, "height": 30, "width": 30}], "categories": CATS,
          "annotations": instances_from_label_map(inst, {1: 1, 2: 2, 3: 5}, 7)}
    perfect = instances_from_label_map(inst, {1: 1, 2: 2, 3: 5}, 7, scores=[0.9, 0.8, 0.7])
    r = coco_evaluate(gt, perfect)
    assert r["stats"]["AP"] == pytest.approx(1.0) and r["stats"]["AR100"] == pytest.approx(1.0)
    np.testing.assert_array_equal(np.diag(r["confusion"])[:3], [1, 1, 1])
    # instance 2 predicted as class 1, instance 3 missed, one spurious detection of class 2
    extra = np.zeros_like(inst)
    extra[26:29, 0:4] = 9
    wrong = instances_from_label_map(np.where(inst == 3, 0, inst) + extra, {1: 1, 2: 1, 9: 2}, 7,
                                     scores=[0.9, 0.8, 0.3])
    c = coco_evaluate(gt, wrong)["confusion"]
    expected = np.zeros((4, 4), int)
    expected[0, 0] = 1   # cell -> cell
    expected[1, 0] = 1   # nucleus detected as cell
    expected[2, 3] = 1   # debris missed
    expected[3, 1] = 1   # spurious nucleus
    np.testing.assert_array_equal(c, expected)
    empty = coco_evaluate(gt, [])
    assert empty["stats"]["AP"] == -1.0 and empty["confusion"][:3, 3].sum() == 3


def test_bad_input(tmp_path):
    gt = {"images": [{"id": 1, "height": 4, "width": 4}], "categories": CATS, "annotations": []}
    with pytest.raises(InputFileError):
        coco_evaluate(tmp_path / "missing.json", [])
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputFileError):
        coco_evaluate(tmp_path / "bad.json", [])
    with pytest.raises(InputFileError):
        coco_evaluate({"annotations": []}, [])
    with pytest.raises(SeglabError, match="category"):
        coco_evaluate(gt, [{"image_id": 1, "category_id": 42, "score": 1.0, "bbox": [0, 0, 1, 1]}], "bbox")
    with pytest.raises(SeglabError, match="segmentation"):
        coco_evaluate(gt, [{"image_id": 1, "category_id": 1, "score": 1.0, "bbox": [0, 0, 1, 1]}], "segm")
