"""Bottom-up instance methods: boundary targets against a brute-force definition, the classical
Otsu + distance watershed and the marker watersheds from semantic outputs on generated touching blobs."""
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from seglab.errors import ParameterError
from seglab.instance import (boundary_candidates, boundary_instances, boundary_labels, boundary_targets,
                             classical_instances, classical_labels, distance_instances, relabel_sequential)
from seglab.metrics import InstanceEvaluator, challenge_score


def _touching_disks(shape=(48, 64), centres=((24, 20, 11), (24, 40, 11), (10, 55, 5))):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    lab = np.zeros(shape, np.int32)
    for k, (cy, cx, r) in enumerate(centres, start=1):
        lab[((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & (lab == 0)] = k
    return lab


def _brute_boundary(lab, width):
    h, w = lab.shape
    out = np.zeros(lab.shape, np.uint8)
    for r in range(h):
        for c in range(w):
            if lab[r, c] == 0:
                continue
            window = lab[max(r - width, 0):r + width + 1, max(c - width, 0):c + width + 1]
            out[r, c] = 2 if (window != lab[r, c]).any() else 1
    return out


@pytest.mark.parametrize("width", [1, 2, 3])
def test_boundary_targets_equal_brute_force(rng, width):
    lab = ndimage.median_filter(rng.integers(0, 5, (20, 24)), 3) * 3  # touching regions, ids with gaps
    np.testing.assert_array_equal(boundary_targets(lab, width), _brute_boundary(lab, width))
    assert {0, 2} <= set(np.unique(boundary_targets(lab, width))) <= {0, 1, 2}
    with pytest.raises(ParameterError, match="width"):
        boundary_targets(lab, 0)
    with pytest.raises(ParameterError, match="2-D"):
        boundary_targets(lab[None], 1)


def test_relabel_sequential():
    np.testing.assert_array_equal(relabel_sequential([[0, 7, 7], [3, 0, 9]]), [[0, 2, 2], [1, 0, 3]])
    np.testing.assert_array_equal(relabel_sequential([[5, 2]]), [[2, 1]])


@pytest.mark.parametrize("polarity", ["bright", "dark"])
def test_classical_splits_touching_blobs(rng, polarity):
    truth = _touching_disks()
    img = np.where(truth > 0, 200.0, 40.0) + rng.normal(0, 8, truth.shape)
    if polarity == "dark":
        img = 255 - img
    img = np.clip(img, 0, 255).astype(np.uint8)
    labels = classical_labels(img[..., None].repeat(3, 2), h=1.0, min_size=10)  # RGB input, auto polarity
    assert labels.max() == 3
    score = challenge_score(truth, labels)
    assert score[0] == 1.0 and score.mean() > 0.7
    one = classical_labels(img, h=30.0, min_size=10)  # h above every peak-to-saddle height: touching disks merge
    assert one.max() == 2
    inst = classical_instances(img, h=1.0, min_size=10)
    assert len(inst) == 3 and inst.classes.tolist() == [1, 1, 1] and inst.scores.tolist() == [1.0] * 3
    assert len(classical_instances(np.full((16, 16), 7, np.uint8))) == 0  # constant image: no objects
    with pytest.raises(ParameterError, match="polarity"):
        classical_labels(img, polarity="light")


def _probs_from_truth(truth, width=1):
    t = boundary_targets(truth, width)
    onehot = np.stack([t == k for k in range(3)]).astype(float)
    p = np.stack([ndimage.gaussian_filter(c, 0.7) for c in onehot])
    return p / p.sum(0, keepdims=True)


def test_boundary_watershed_recovers_touching_objects():
    truth = _touching_disks()
    probs = _probs_from_truth(truth)
    labels, scores = boundary_labels(probs, min_size=10)
    assert labels.max() == 3 and len(scores) == 3 and ((scores > 0.5) & (scores <= 1)).all()
    assert challenge_score(truth, labels).mean() > 0.85
    inst = boundary_instances(np.moveaxis(probs, 0, -1), min_size=10)  # H x W x 3 works too
    assert len(inst) == 3 and inst.scores.min() > 0.5
    # without the boundary class the two touching disks are one interior: one marker, one object
    merged = probs.copy()
    merged[1] += merged[2]
    merged[2] = 0
    assert boundary_labels(merged, min_size=10)[0].max() == 2
    with pytest.raises(ParameterError, match="3 x H x W"):
        boundary_labels(probs[:2])
    with pytest.raises(ParameterError, match="interior_threshold"):
        boundary_labels(probs, interior_threshold=1.5)


def _weak_boundary_probs(truth):
    """3-class probabilities whose boundary rims are only half confident: at interior threshold 0.4 the two
    touching disks are one marker, at 0.6 two."""
    probs = _probs_from_truth(truth)
    rim = boundary_targets(truth, 1) == 2
    probs[:, rim] = np.array([0.05, 0.5, 0.45])[:, None]
    return probs


def test_boundary_candidates_add_the_objects_of_a_higher_threshold():
    truth = _touching_disks()
    probs = _weak_boundary_probs(truth)
    layers = boundary_candidates(probs, interior_thresholds=(0.4, 0.6), overlap=0.8, demote=0.5, min_size=10)
    first, scores = layers[0]
    np.testing.assert_array_equal(first, boundary_labels(probs, interior_threshold=0.4, min_size=10)[0])
    assert first.max() == 2 and len(scores) == 2  # the touching pair merged, the small disk apart
    assert len(layers) == 2
    extra, extra_scores = layers[1]
    assert extra.max() == 2 and len(extra_scores) == 2  # the two halves; the small disk again is a duplicate
    assert extra_scores.max() <= 0.5 * 1.0 and extra_scores.max() < scores.min()
    assert challenge_score(truth, extra)[0] < 1  # a layer holds only the new objects
    # every later object overlapping a kept one (IoU >= overlap) is left out: here all are
    assert len(boundary_candidates(probs, interior_thresholds=(0.4, 0.6), overlap=0.01, min_size=10)) == 1
    for bad, match in (({"interior_thresholds": ()}, "interior_thresholds"), ({"overlap": 0}, "overlap"),
                       ({"demote": 1.5}, "demote")):
        with pytest.raises(ParameterError, match=match):
            boundary_candidates(probs, **bad)

    # COCO AP sees the extra layer, the challenge score and PQ the partition alone
    plain, more = InstanceEvaluator(), InstanceEvaluator()
    plain.update(truth, first, scores=dict(enumerate(scores, 1)))
    more.update(truth, first, scores=dict(enumerate(scores, 1)), extra=[(extra, extra_scores)])
    a, b = plain.compute(), more.compute()
    assert a["challenge"] == b["challenge"] and a["pq"] == b["pq"]
    assert b["coco_ap50"] > a["coco_ap50"] + 0.3
    with pytest.raises(ParameterError, match="extra detections"):
        more.update(truth, first, extra=[(extra[:-1], extra_scores)])


def test_distance_watershed_from_predicted_distance():
    truth = _touching_disks()
    dist = ndimage.distance_transform_edt(truth > 0)
    inst = distance_instances((truth > 0).astype(float), dist, h=1.0, min_size=10)
    assert len(inst) == 3
    assert challenge_score(truth, inst.to_label_map())[0] == 1.0


def test_boundary3_targets_train_a_semantic_model(tmp_path):
    """`target: boundary3` makes an instance data set trainable by the ordinary `seglab train`."""
    import json

    from PIL import Image

    from seglab.cli.main import main
    from seglab.engine.checkpoint import load_trained

    root = tmp_path / "nuclei"
    rng = np.random.default_rng(0)
    for i in range(4):
        truth = _touching_disks((32, 40), ((16, 12, 6), (16, 24, 6)))
        img = (np.where(truth > 0, 200, 40) + rng.normal(0, 5, truth.shape)).clip(0, 255).astype(np.uint8)
        for sub, arr in (("images", img), ("labels", truth.astype(np.uint16))):
            (root / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(root / sub / f"{i}.png")
    (root / "split.json").write_text(json.dumps({"train": ["0", "1", "2"], "val": ["3"], "test": ["3"]}))
    config = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
    assert main(["train", str(config), "--set", f"run.dir={tmp_path / 'runs'}", "--set", f"data.root={root}",
                 "--set", "data.format=instance_folder", "--set", "data.options={target: boundary3, channels: 3}",
                 "--set", "trainer.max_epochs=1", "--set", "name=b3"]) == 0
    trained = load_trained(tmp_path / "runs/b3/last.pt")
    assert trained.info.classes == ("background", "interior", "boundary") and trained.info.in_channels == 3
