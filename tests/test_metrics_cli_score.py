"""``seglab score``: label-map folders (matching by stem, missing/extra files, size checks, JSON) and COCO."""
import json

import numpy as np
import pytest

from seglab.cli.main import main
from seglab.io import write_labels
from seglab.metrics import ConfusionMatrix, hd95, instances_from_label_map


def _err(capsys):
    return " ".join(capsys.readouterr().err.split())  # rich wraps long lines


@pytest.fixture
def folders(tmp_path, rng):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pairs = {}
    for stem in ("a", "b", "c"):
        t = np.zeros((24, 30), np.int32)
        t[4:16, 5:20] = 1
        t[10:22, 18:28] = 2
        t[0:3] = 255
        p = np.roll(np.where(t == 255, 0, t), rng.integers(0, 3), axis=1)
        write_labels(gt / f"{stem}.png", t)
        pairs[stem] = (p, t)
    write_labels(pred / "a.png", pairs["a"][0])
    np.save(pred / "b.npy", pairs["b"][0])      # any label format, matched by stem
    write_labels(pred / "zz_extra.png", pairs["a"][0])
    return pred, gt, pairs


def test_score_folders_json(folders, tmp_path, capsys):
    pred, gt, pairs = folders
    names = tmp_path / "names.txt"
    names.write_text("background\nroad\ncar\nsky\n")
    out = tmp_path / "res.json"
    code = main(["score", "--pred", str(pred), "--gt", str(gt), "--num-classes", "4", "--ignore-index", "255",
                 "--class-names", str(names), "--json", str(out)])
    assert code == 0
    captured = capsys.readouterr()
    err = " ".join(captured.err.split())
    assert "road" in captured.out and "mean" in captured.out
    assert "1 ground truths without a prediction: c" in err and "zz_extra" in err
    res = json.loads(out.read_text())["semantic"]
    assert res["images"] == 2 and res["missing_predictions"] == ["c"] and res["extra_predictions"] == ["zz_extra"]
    cm = ConfusionMatrix(4, 255)
    for s in ("a", "b"):
        cm.update(*pairs[s])
    ref = cm.compute()
    assert res["miou"] == pytest.approx(ref["miou"])
    assert res["per_class"][3]["iou"] is None  # class absent from both: null, not 0
    assert res["per_class"][1]["name"] == "road"
    np.testing.assert_array_equal(res["confusion_matrix"], cm.matrix)
    keep = [pairs[s][1] != 255 for s in ("a", "b")]
    h = [hd95((pairs[s][0] == 2) & k, (pairs[s][1] == 2) & k) for s, k in zip(("a", "b"), keep)]
    assert res["per_class"][2]["hd95"] == pytest.approx(np.mean(h))


def test_score_user_errors(folders, tmp_path, capsys):
    pred, gt, pairs = folders
    assert main(["score", "--pred", str(pred), "--gt", str(gt)]) == 2
    assert "--num-classes" in _err(capsys)
    assert main(["score", "--pred", str(tmp_path / "nope"), "--gt", str(gt), "-n", "3"]) == 2
    assert "does not exist" in _err(capsys)
    write_labels(pred / "c.png", np.zeros((5, 5), np.int32))  # wrong size
    assert main(["score", "--pred", str(pred), "--gt", str(gt), "-n", "4", "--ignore-index", "255"]) == 2
    err = _err(capsys)
    assert "c.png" in err and "differs" in err
    (pred / "c.png").unlink()
    # a label outside [0, N) is reported with the file names
    assert main(["score", "--pred", str(pred), "--gt", str(gt), "-n", "2", "--ignore-index", "255"]) == 2
    assert "outside" in _err(capsys)
    names = tmp_path / "n.txt"
    names.write_text("x\ny\n")
    assert main(["score", "--pred", str(pred), "--gt", str(gt), "-n", "4", "--class-names", str(names)]) == 2
    assert "class names" in _err(capsys)
    assert main(["score"]) == 2


def test_score_coco(tmp_path, capsys):
    inst = np.zeros((20, 20), int)
    inst[2:8, 2:8] = 1
    inst[10:18, 10:18] = 2
    gt = {"images": [{"id": 1, "height": 20, "width": 20}],
          "categories": [{"id": 1, "name": "cell"}, {"id": 2, "name": "nucleus"}],
          "annotations": instances_from_label_map(inst, {1: 1, 2: 2}, 1)}
    dets = instances_from_label_map(inst, {1: 1, 2: 1}, 1, scores=[0.9, 0.5])
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dets))
    out = tmp_path / "coco.json"
    assert main(["score", "--coco-gt", str(tmp_path / "gt.json"), "--coco-pred", str(tmp_path / "dt.json"),
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "nucleus" in text and "AP50" in text
    res = json.loads(out.read_text())["coco"]
    assert res["per_class"]["1"]["AP"] == pytest.approx(1.0)
    assert res["confusion"][1][0] == 1  # the nucleus detected as a cell
    assert main(["score", "--coco-gt", str(tmp_path / "gt.json")]) == 2
