"""Panoptic fusion on a hand-made scene (expected map written by hand), COCO panoptic write / read round
trip, and PQ of the written files through coco_panoptic_evaluate."""
import json

import numpy as np
import pytest

from seglab.errors import InputFileError, ParameterError
from seglab.metrics import coco_panoptic_evaluate
from seglab.panoptic import fuse_panoptic, read_coco_panoptic_set, segments_info, write_coco_panoptic
from seglab.structures import Instances, masks_to_boxes

SKY, GRASS, CAR = 1, 2, 7


def _instances(masks, scores, classes):
    masks = np.stack(masks)
    return Instances(masks.shape[1:], masks_to_boxes(masks), scores=scores, classes=classes, masks=masks)


def _box(r0, r1, c0, c1, shape=(10, 10)):
    m = np.zeros(shape, bool)
    m[r0:r1, c0:c1] = True
    return m


def _scene():
    sem = np.full((10, 10), SKY)
    sem[8:, :] = GRASS          # 20 grass pixels
    sem[6:8, 6:10] = CAR        # the semantic head also saw a car: never stuff
    inst = _instances([_box(2, 6, 2, 6),     # A 0.9: 16 px, pasted whole
                       _box(4, 8, 4, 7),     # B 0.8: 12 px, 4 taken by A (1/3 <= 0.5): keeps 8
                       _box(2, 5, 2, 6),     # C 0.7: 12 px, all taken -> skipped
                       _box(0, 2, 0, 2),     # D 0.3: below the score threshold
                       _box(0, 0, 0, 0)],    # E 0.95: empty mask -> skipped
                      [0.9, 0.8, 0.7, 0.3, 0.95], [CAR, CAR, CAR, CAR, CAR])
    return sem, inst


def test_fusion_hand_case():
    sem, inst = _scene()
    ids, segs = fuse_panoptic(sem, inst, things=(CAR,), stuff_area=21)
    # sky: rows 0-7 less the 8 semantic car pixels = 72, less A (16) and B's 6 free sky pixels = 50
    expected = np.full((10, 10), 3)
    expected[2:6, 2:6] = 1                   # A
    expected[4:8, 4:7] = np.where(expected[4:8, 4:7] == 1, 1, 2)  # B's free pixels
    expected[8:, :] = 0                      # grass: 20 px < stuff_area 21 -> void
    expected[6:8, 7:10] = 0                  # semantic car pixels not covered by an instance -> void
    np.testing.assert_array_equal(ids, expected)
    assert [(s["id"], s["category_id"], s["isthing"], s["area"]) for s in segs] == [
        (1, CAR, True, 16), (2, CAR, True, 8), (3, SKY, False, 50)]
    assert [s["instance"] for s in segs[:2]] == [0, 1] and segs[0]["score"] == pytest.approx(0.9)
    ids2, segs2 = fuse_panoptic(sem, inst, things=(CAR,), stuff_area=20, overlap_threshold=0.2)
    assert [s["area"] for s in segs2] == [16, 72 - 16, 20]  # B now skipped (1/3 > 0.2); grass kept
    assert (ids2[8:] == 3).all()


def test_fusion_bad_input():
    sem, inst = _scene()
    with pytest.raises(ParameterError, match="image"):
        fuse_panoptic(sem[:5], inst)
    with pytest.raises(ParameterError, match="overlap_threshold"):
        fuse_panoptic(sem, inst, overlap_threshold=2)
    ids, segs = fuse_panoptic(sem, Instances.empty((10, 10)), things=(CAR,), stuff_area=0)
    assert [s["category_id"] for s in segs] == [SKY, GRASS] and (ids[6:8, 6:10] == 0).all()


def test_coco_panoptic_round_trip(tmp_path):
    sem, inst = _scene()
    ids, segs = fuse_panoptic(sem, inst, things=(CAR,), stuff_area=0)
    info = segments_info(ids, segs)
    assert info[0] == {"id": 1, "category_id": CAR, "iscrowd": 0, "area": 16, "bbox": [2.0, 2.0, 4.0, 4.0]}
    cats = [{"id": SKY, "name": "sky", "isthing": 0}, {"id": GRASS, "name": "grass", "isthing": 0},
            {"id": CAR, "name": "car", "isthing": 1}]
    path = write_coco_panoptic(tmp_path / "pred.json", [(5, "img5", ids, segs)], cats)
    assert (tmp_path / "pred" / "img5.png").is_file()
    doc = json.loads(path.read_text())
    assert doc["annotations"][0]["segments_info"] == info and doc["categories"] == cats
    ((image_id, ids_back, segs_back),) = read_coco_panoptic_set(path)
    assert image_id == 5
    np.testing.assert_array_equal(ids_back, ids)
    assert segs_back == {s["id"]: {"category_id": s["category_id"], "iscrowd": 0} for s in segs}
    # large ids survive the RGB encoding
    big = np.array([[0, 255, 256, 65536 + 3]])
    write_coco_panoptic(tmp_path / "big.json", [(1, "b", big, {255: SKY, 256: SKY, 65539: CAR})], cats)
    np.testing.assert_array_equal(read_coco_panoptic_set(tmp_path / "big.json")[0][1], big)
    # PQ of the written set against itself is 1; against the fusion without instance B it is lower
    gt = write_coco_panoptic(tmp_path / "gt.json", [(5, "img5", ids, segs)], cats)
    assert coco_panoptic_evaluate(gt, path)["all"]["pq"] == pytest.approx(1.0)
    ids_b, segs_b = fuse_panoptic(sem, inst[[0, 2, 3]], things=(CAR,), stuff_area=0)
    worse = write_coco_panoptic(tmp_path / "worse.json", [(5, "img5", ids_b, segs_b)], cats)
    assert coco_panoptic_evaluate(gt, worse)["things"]["pq"] < 1.0


def test_coco_panoptic_bad_input(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        read_coco_panoptic_set(tmp_path / "none.json")
    (tmp_path / "p.json").write_text(json.dumps({"annotations": [{"image_id": 1, "file_name": "x.png",
                                                                  "segments_info": []}]}))
    with pytest.raises(InputFileError, match=r"x.png: no such panoptic PNG \(image 1"):
        read_coco_panoptic_set(tmp_path / "p.json")
    with pytest.raises(ParameterError, match="segment 4 has no pixel"):
        segments_info(np.ones((2, 2), int), {4: SKY})
