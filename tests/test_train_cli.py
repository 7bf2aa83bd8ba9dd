"""``seglab train / evaluate / predict`` on generated data, and their one-line errors (exit code 2)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seglab.cli.main import main
from seglab.data.synthetic import render

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


def _one_error(capsys) -> str:
    err = " ".join(capsys.readouterr().err.split())  # rich wraps the one message at the terminal width
    assert err.startswith("error: ") and err.count("error: ") == 1, err
    return err


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", str(CONFIG), "--set", f"run.dir={out}", "--set", "trainer.max_epochs=3",
                 "--set", "data.options.n=8"]) == 0
    return out / "tiny"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The synthetic test split written as an image / mask folder data set."""
    root = tmp_path_factory.mktemp("folder")
    for i in range(3):
        img, t = render(2000 + i, 32)
        (root / "test/images").mkdir(parents=True, exist_ok=True)
        (root / "test/masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / f"test/images/{i}.png")
        Image.fromarray(t.astype(np.uint8)).save(root / f"test/masks/{i}.png")
    (root / "classes.txt").write_text("background\nrectangle\ndisc\n")
    return root


def test_evaluate_writes_every_metric(run, folder, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert main(["evaluate", str(run / "best.pt"), "--data", str(folder), "--format", "folder", "--json", str(out),
                 "--out", str(tmp_path / "ev")]) == 0
    res = json.loads(out.read_text())
    for k in ("miou", "mean_accuracy", "pixel_accuracy", "fwiou", "mean_dice", "per_class", "matrix"):
        assert k in res
    m = np.array(res["matrix"])
    assert m.shape == (3, 3) and m.sum() == 3 * 32 * 32
    assert res["pixel_accuracy"] == pytest.approx(np.trace(m) / m.sum())
    assert (tmp_path / "ev/confusion.png").is_file() and "| rectangle |" in (tmp_path / "ev/report.md").read_text()
    # the Lightning checkpoint gives the same scores as the exported one
    assert main(["evaluate", str(run / "checkpoints/best.ckpt"), "--data", str(folder), "--format", "folder",
                 "--json", str(tmp_path / "m2.json"), "--out", str(tmp_path / "ev2")]) == 0
    assert json.loads((tmp_path / "m2.json").read_text())["matrix"] == res["matrix"]


def test_predict_any_size_with_tiles_tta_and_overlay(run, tmp_path, capsys):
    big, _ = render(7, 80)
    Image.fromarray(big[:70, :]).save(tmp_path / "big.png")
    Image.fromarray(big[:20, :24]).save(tmp_path / "small.jpg")
    out = tmp_path / "pred"
    assert main(["predict", str(run / "last.pt"), str(tmp_path / "big.png"), str(tmp_path / "small.jpg"),
                 "--out", str(out), "--overlay", "--tta", "--tile", "32"]) == 0
    lab = np.asarray(Image.open(out / "big.png"))
    assert lab.shape == (70, 80) and set(np.unique(lab)) <= {0, 1, 2}
    assert np.asarray(Image.open(out / "small.png")).shape == (20, 24)
    assert np.asarray(Image.open(out / "big_overlay.png")).shape == (70, 80, 3)
    assert "MP/s" in capsys.readouterr().out


def test_bad_config_key(tmp_path, capsys):
    assert main(["train", str(CONFIG), "--set", "trainer.max_epoch=3"]) == 2
    assert "unknown config key 'trainer.max_epoch'" in _one_error(capsys)


def test_checkpoint_of_another_model(run, folder, tmp_path, capsys):
    two = Path(str(folder) + "-two")
    (two / "test").mkdir(parents=True, exist_ok=True)
    for sub in ("images", "masks"):
        if not (two / "test" / sub).exists():
            (two / "test" / sub).symlink_to(folder / "test" / sub)
    (two / "classes.txt").write_text("a\nb\nc\nd\n")
    assert main(["evaluate", str(run / "best.pt"), "--data", str(two), "--format", "folder"]) == 2
    assert "trained on 'synthetic' (3 classes" in _one_error(capsys)
    junk = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, junk)
    assert main(["predict", str(junk), str(folder / "test/images/0.png"), "--out", str(tmp_path / "o")]) == 2
    assert "not a seglab checkpoint" in _one_error(capsys)
    (tmp_path / "garbage.pt").write_bytes(b"no torch file")
    assert main(["evaluate", str(tmp_path / "garbage.pt"), "--data", str(folder), "--format", "folder"]) == 2
    assert "not a readable checkpoint" in _one_error(capsys)


def test_unreadable_image(run, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert main(["predict", str(run / "last.pt"), str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "bad.png" in _one_error(capsys)
    assert not (tmp_path / "o").exists()
    assert main(["predict", str(run / "last.pt"), str(tmp_path / "missing.png"), "--out", str(tmp_path / "o")]) == 2
    assert "missing.png: no such file" in _one_error(capsys)
