"""``seglab data check``: every kind of problem is found and named; class frequencies are exact."""
import json

import numpy as np
import pytest
from PIL import Image

from seglab.cli.main import main
from seglab.data import open_dataset
from seglab.data.check import check_dataset, check_split, class_weights
from seglab.errors import SeglabError


def _png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, np.uint8)).save(path)


@pytest.fixture
def clean(tmp_path, rng):
    masks = []
    for i in range(3):
        _png(tmp_path / f"train/images/{i}.png", rng.integers(0, 255, (6, 7, 3)))
        m = rng.integers(0, 3, (6, 7))
        m[0, 0] = 255
        masks.append(m)
        _png(tmp_path / f"train/masks/{i}.png", m)
    (tmp_path / "classes.txt").write_text("a\nb\nc\n")
    return tmp_path, masks


def test_clean_data_set_frequencies(clean):
    root, masks = clean
    rep = check_dataset(root, "folder", ["train"])
    assert rep.ok and rep.splits[0].samples == 3
    allm = np.concatenate([m.ravel() for m in masks])
    np.testing.assert_array_equal(rep.splits[0].class_pixels, np.bincount(allm[allm != 255], minlength=3))
    assert rep.splits[0].ignored_pixels == 3


def test_every_problem_kind_is_reported(clean):
    root, _ = clean
    _png(root / "train/images/nomask.png", np.zeros((6, 7, 3)))                 # missing mask
    _png(root / "train/images/big.png", np.zeros((9, 9, 3)))                    # size mismatch
    _png(root / "train/masks/big.png", np.zeros((6, 7)))
    _png(root / "train/images/bad.png", np.zeros((6, 7, 3)))                    # label outside classes
    _png(root / "train/masks/bad.png", np.full((6, 7), 5))
    (root / "train/images/broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")  # unreadable
    _png(root / "train/masks/broken.png", np.zeros((6, 7)))
    s = check_dataset(root, "folder", ["train"]).splits[0]
    assert [p.rsplit("/", 1)[-1] for p in s.missing_targets] == ["nomask.png"]
    assert len(s.size_mismatch) == 1 and "big.png: image 9x9, target 6x7" in s.size_mismatch[0]
    assert len(s.bad_labels) == 1 and "values [5]" in s.bad_labels[0]
    assert len(s.unreadable) == 1 and "broken.png" in s.unreadable[0]
    assert s.problems == 4


def test_cli_exit_codes_and_json(clean, tmp_path, capsys):
    root, _ = clean
    out = tmp_path / "rep.json"
    assert main(["data", "check", str(root), "--format", "folder", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["ok"] is True
    _png(root / "train/masks/0.png", np.full((6, 7), 9))
    assert main(["data", "check", str(root), "--format", "folder"]) == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps the one message at the terminal width
    assert err.startswith("error: ") and err.count("error:") == 1
    assert "fails its check: bad labels: 0.png: values [9]" in err
    assert main(["data", "check", str(root), "--format", "nope"]) == 2


def test_class_weights_median_frequency():
    from seglab.data.check import SplitReport

    # class 0: 60 px in 2 images of 50 px; class 1: 30 px in 1 image; class 2: 10 px in 2 images
    rep = SplitReport("train", 2, class_pixels=[60, 30, 10], class_image_pixels=[100, 50, 100])
    f = np.array([0.6, 0.6, 0.1])
    want = np.median(f) / f
    np.testing.assert_allclose(class_weights(rep, "median"), want / want.mean())
    inv = 1 / (np.array([60, 30, 10]) / 100)
    np.testing.assert_allclose(class_weights(rep, "inverse"), inv / inv.mean())
    np.testing.assert_allclose(class_weights(rep, "sqrt_median"), np.sqrt(want) / np.sqrt(want).mean())
    np.testing.assert_allclose(class_weights(rep, "sqrt_inverse"), np.sqrt(inv) / np.sqrt(inv).mean())
    with pytest.raises(SeglabError, match="sqrt_median"):
        class_weights(rep, "cube_median")
    rep.class_pixels[2] = 0
    assert class_weights(rep, "inverse")[2] == 0


def test_real_isbi_check(data_dir):
    rep = check_split(open_dataset(data_dir / "isbi2012", "isbi2012", "test"))
    assert rep.problems == 0 and sum(rep.class_pixels) == 6 * 512 * 512
