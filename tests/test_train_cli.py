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
    # distance metrics: per class, and their class means
    bf = [c["boundary_f"] for c in res["per_class"].values() if c["boundary_f"] is not None]
    assert res["mean_boundary_f"] == pytest.approx(np.mean(bf))
    assert all("hd95" in c and "hd95_missed" in c for c in res["per_class"].values())
    assert "boundary F" in (tmp_path / "ev/report.md").read_text()
    assert main(["evaluate", str(run / "best.pt"), "--data", str(folder), "--format", "folder", "--no-distances",
                 "--json", str(tmp_path / "m3.json"), "--out", str(tmp_path / "ev3")]) == 0
    assert "mean_hd95" not in json.loads((tmp_path / "m3.json").read_text())


def test_distance_accumulator_averages_over_images():
    from seglab.engine.evaluate import DistanceAccumulator
    from seglab.metrics import boundary_f, hd95

    rng = np.random.default_rng(0)
    acc = DistanceAccumulator(3, ignore_index=255, tolerance=1.0)
    pairs = []
    for _ in range(3):
        t = np.zeros((20, 24), np.int64)
        t[4:12, 5:15] = 1
        p = t.copy()
        p[rng.integers(0, 20, 30), rng.integers(0, 24, 30)] = 1
        pairs.append((p, t))
        acc.update(p, t)
    p, t = pairs[0][0].copy(), pairs[0][1].copy()
    p[0, 0] = 2                     # class 2 predicted, absent from the target: HD95 infinite, F = 0
    acc.update(p, t)
    pairs.append((p, t))
    r = acc.compute()
    want = np.mean([hd95(p == 1, t == 1) for p, t in pairs])
    assert r["hd95"][1] == pytest.approx(want)
    assert r["boundary_f"][1] == pytest.approx(np.mean([boundary_f(p == 1, t == 1, 1.0) for p, t in pairs]))
    assert r["hd95"][2] is None and r["hd95_missed"][2] == 1 and r["boundary_f"][2] == 0.0


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


def test_predict_image_resizes_to_the_training_size_and_back(run):
    import cv2
    import torch.nn.functional as F

    from seglab.engine.checkpoint import load_trained
    from seglab.engine.evaluate import predict_image, training_resize
    from seglab.engine.inference import normalise

    trained = load_trained(run / "best.pt")
    img, _ = render(3000, 40)
    assert training_resize(trained) is None  # the tiny config trains at the data's own size
    native = predict_image(trained, img)
    np.testing.assert_allclose(native, predict_image(trained, img, resize=None))
    small = predict_image(trained, img, resize=(20, 24))
    assert small.shape == native.shape == (3, 40, 40)
    x = normalise(cv2.resize(img, (24, 20), interpolation=cv2.INTER_AREA), trained.mean, trained.std)
    with torch.no_grad():
        want = F.interpolate(torch.softmax(trained.model(x), 1), size=(40, 40), mode="bilinear",
                             align_corners=False)[0].numpy()
    np.testing.assert_allclose(small, want, atol=1e-5)
    trained.config.setdefault("augment", {})["resize"] = [20, 24]     # as a run with augment.resize
    np.testing.assert_allclose(predict_image(trained, img), small, atol=1e-6)


def test_training_a_finished_run_again_says_so_in_one_line(run, capsys):
    capsys.readouterr()
    assert main(["train", str(CONFIG), "--set", f"run.dir={run.parent}", "--set", "trainer.max_epochs=3",
                 "--set", "data.options.n=8"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"{run} is finished (3 epochs, 6 steps); to train longer: seglab train {run / 'config.yaml'} "
                   "--set trainer.max_epochs=N (more than 3); for a new run: --set name=NEW"]


def test_predict_precision_and_fuse_options(run, tmp_path, capsys, monkeypatch):
    from seglab.engine import fast

    img, _ = render(11, 40)
    Image.fromarray(img).save(tmp_path / "a.png")
    ck, a = str(run / "last.pt"), str(tmp_path / "a.png")
    for out, extra in (("plain", ["--precision", "fp32", "--no-fuse"]), ("fp32", ["--precision", "fp32"]),
                       ("auto", [])):
        assert main(["predict", ck, a, "--out", str(tmp_path / out), *extra]) == 0
    lab = {k: np.asarray(Image.open(tmp_path / k / "a.png")) for k in ("plain", "fp32", "auto")}
    assert np.array_equal(lab["plain"], lab["fp32"])
    assert (lab["auto"] == lab["plain"]).mean() >= 0.99
    capsys.readouterr()
    assert main(["predict", ck, a, "--out", str(tmp_path / "x"), "--precision", "fp16"]) == 2
    assert "--precision" in _one_error(capsys)
    monkeypatch.setattr(fast, "bf16_supported", lambda: False)
    assert main(["predict", ck, a, "--out", str(tmp_path / "b16"), "--precision", "bf16"]) == 0
    err = capsys.readouterr().err
    assert err.count("note:") == 1 and "no native bfloat16" in err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b16" / "a.png")), lab["plain"])
