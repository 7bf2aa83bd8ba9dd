"""COCO keypoint files (round trip, bad input), results written for the OKS evaluation, drawing."""
import json

import numpy as np
import pytest
import torch

from seglab.errors import InputFileError, ParameterError
from seglab.keypoints import (COCO_PERSON, draw_keypoints, draw_points, keypoint_results, read_coco_keypoints,
                              write_coco_keypoints, write_keypoint_results)
from seglab.metrics.keypoints import oks_evaluate
from seglab.structures import Instances


def _gt():
    rng = np.random.default_rng(0)
    person = {"id": 1, "name": "person", "supercategory": "person", "keypoints": COCO_PERSON.keypoints,
              "skeleton": [[a + 1, b + 1] for a, b in COCO_PERSON.skeleton]}
    hand = {"id": 7, "name": "hand", "supercategory": "hand", "keypoints": ["wrist", "thumb", "index"],
            "skeleton": [[1, 2], [1, 3]]}
    anns = []
    for n in range(4):
        v = rng.choice([0, 1, 2], 17)
        kp = np.stack([rng.integers(0, 64, 17), rng.integers(0, 48, 17), v], 1) * (v[:, None] > 0)
        anns.append({"id": 10 + n, "image_id": 1 + n % 2, "category_id": 1, "keypoints": kp.reshape(-1).tolist(),
                     "num_keypoints": int((v > 0).sum()), "bbox": [2.0, 3.0, 40.0, 30.0], "area": 900.0,
                     "iscrowd": int(n == 3)})
    anns.append({"id": 20, "image_id": 1, "category_id": 1, "keypoints": [0] * 51, "num_keypoints": 0,
                 "bbox": [1.0, 1.0, 5.0, 5.0], "area": 20.0, "iscrowd": 0})  # all invisible: legal
    anns.append({"id": 30, "image_id": 3, "category_id": 7, "keypoints": [5, 6, 2, 9.5, 7.25, 1, 0, 0, 0],
                 "num_keypoints": 2, "bbox": [4.0, 5.0, 7.0, 4.0], "area": 25.0, "iscrowd": 0})
    images = [{"id": 1, "file_name": "a.png", "height": 48, "width": 64},
              {"id": 2, "file_name": "b.png", "height": 48, "width": 64},
              {"id": 3, "file_name": "c.png", "height": 20, "width": 20}]
    return {"images": images, "annotations": anns, "categories": [person, hand]}


def test_coco_keypoints_round_trip(tmp_path):
    gt = _gt()
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    data = read_coco_keypoints(path)
    assert [im.id for im in data.images] == [1, 2, 3]
    im1 = data.images[0]
    assert len(im1.instances) == 3 and im1.instances.keypoints.shape == (3, 17, 3)
    assert im1.ann_ids.tolist() == [10, 12, 20]
    # pixel indices -> continuous coordinates: + 0.5 on labelled keypoints, absent ones stay (0, 0, 0)
    kp = np.array(gt["annotations"][0]["keypoints"], float).reshape(17, 3)
    lab = kp[:, 2] > 0
    np.testing.assert_allclose(im1.instances.keypoints[0].numpy()[lab, :2], kp[lab, :2] + 0.5)
    assert (im1.instances.keypoints[0].numpy()[~lab] == 0).all()
    np.testing.assert_allclose(im1.instances.boxes[0].numpy(), [2, 3, 42, 33])
    assert data.categories[7].skeleton == [(0, 1), (0, 2)] and data.images[2].instances.keypoints.shape == (1, 3, 3)
    out = tmp_path / "again.json"
    write_coco_keypoints(out, data)
    back = json.loads(out.read_text())
    assert back["categories"] == gt["categories"]
    assert back["images"] == gt["images"]
    assert len(back["annotations"]) == len(gt["annotations"])
    for a, b in zip(sorted(back["annotations"], key=lambda a: a["id"]), gt["annotations"]):  # grouped by image
        assert {k: a[k] for k in a if k != "keypoints"} == {k: b[k] for k in b if k != "keypoints"}
        np.testing.assert_allclose(a["keypoints"], b["keypoints"], atol=1e-4)


def test_keypoint_results_score_like_the_ground_truth(tmp_path):
    """Ground truth read, turned into results (scores 1), written and evaluated: every OKS is 1, AP 1."""
    gt = _gt()
    gt["annotations"] = [a for a in gt["annotations"] if a["category_id"] == 1]
    gt["categories"] = gt["categories"][:1]
    data = read_coco_keypoints(gt)
    res = []
    for im in data.images:
        keep = ~im.iscrowd & (im.instances.keypoints[:, :, 2] > 0).any(1).numpy()
        res += keypoint_results(im.id, im.instances[torch.from_numpy(keep)])
    path = write_keypoint_results(tmp_path / "res.json", res)
    stats = oks_evaluate(gt, path)["stats"]
    assert stats["AP"] == pytest.approx(1.0) and stats["AR"] == pytest.approx(1.0)


@pytest.mark.parametrize("edit,message", [
    (lambda d: d["annotations"][0]["keypoints"].__setitem__(0, float("nan")), "annotation 10: NaN"),
    (lambda d: d["annotations"][1].__setitem__("keypoints", [1, 2, 2] * 16), "annotation 11: 48 keypoint values"),
    (lambda d: d["annotations"][5].__setitem__("keypoints", [5, 6, 2, 25, 7, 1, 0, 0, 0]),
     "annotation 30: keypoints outside"),
    (lambda d: d["annotations"][0].__setitem__("image_id", 99), "annotation 10: image_id 99"),
    (lambda d: d["annotations"][0].__setitem__("category_id", 5), "annotation 10: category_id 5"),
    (lambda d: d["annotations"][5].__setitem__("keypoints", [5, 6, 3, 0, 0, 0, 0, 0, 0]), "visibility"),
])
def test_coco_keypoints_bad_input(tmp_path, edit, message):
    gt = _gt()
    edit(gt)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(gt))  # NaN is written as the bare token NaN, which Python's json reads back
    with pytest.raises(InputFileError, match=message) as err:
        read_coco_keypoints(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_coco_keypoints_bad_files(tmp_path):
    with pytest.raises(InputFileError, match="no such"):
        read_coco_keypoints(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(InputFileError, match="not valid JSON"):
        read_coco_keypoints(tmp_path / "x.json")
    with pytest.raises(InputFileError, match="'images'"):
        read_coco_keypoints({"annotations": []})


def test_keypoint_results_refuse_nan_and_missing_keypoints():
    inst = Instances((10, 10), [[0, 0, 5, 5]], keypoints=[[[1.0, float("nan"), 2]]])
    with pytest.raises(ParameterError, match="NaN"):
        keypoint_results(1, inst)
    with pytest.raises(ParameterError, match="keypoints"):
        keypoint_results(1, Instances((10, 10), [[0, 0, 5, 5]]))


def test_draw_keypoints_and_skeleton():
    img = np.zeros((20, 30), np.uint8)
    kp = np.array([[[5.5, 5.5, 2], [20.5, 5.5, 1], [10.5, 15.5, 0]]])
    out = draw_keypoints(img, kp, [(0, 1), (1, 2)], colors=[(255, 0, 0), (0, 255, 0), (0, 0, 255)], radius=1.5)
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8 and img.max() == 0  # a copy
    assert tuple(out[5, 5]) == (255, 0, 0) and tuple(out[5, 20]) == (0, 255, 0)
    assert tuple(out[5, 12]) == (0, 255, 255)  # on the line between the two drawn keypoints
    assert not (out[15, 10] == (0, 0, 255)).all()  # absent keypoint not drawn
    assert (out[10:, :] == 0).all()  # nor the line to it
    edge = draw_keypoints(img, [[-3.0, 40.0, 2], [29.5, 19.5, 2]], [(0, 1)])  # clipped, no error
    assert edge[19, 29].any()
    with pytest.raises(ParameterError, match="skeleton"):
        draw_keypoints(img, kp, [(0, 3)])
    pts = draw_points(img, [[2.5, 2.5]], color=(1, 2, 3), radius=1)
    assert tuple(pts[2, 2]) == (1, 2, 3) and pts.sum() == 6
