"""Training runs on generated data: run directory, exact resume after an interruption, early stopping,
class weights, and refusal of a data set that fails its check."""
import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from seglab.engine import load_config, train
from seglab.errors import SeglabError

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


def tiny(tmp_path, **over):
    base = {"run": {"dir": str(tmp_path)}, "data": {"options": {"n": 8, "size": 32}},
            "trainer": {"max_epochs": 3, "progress": False}}
    for k, v in over.items():
        base[k] = {**base.get(k, {}), **v}
    return load_config(CONFIG, overrides=base)


class Interrupt(L.Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 2:
            raise RuntimeError("simulated interruption")


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_run_directory_and_learning(tmp_path):
    run = train(tiny(tmp_path, trainer={"max_epochs": 4}), log=lambda s: None)
    for f in ("config.yaml", "logs/metrics.csv", "checkpoints/best.ckpt", "checkpoints/last.ckpt", "best.pt",
              "last.pt", "report.json", "report.md", "confusion.png", "summary.json"):
        assert (run / f).is_file(), f
    assert list((run / "tb").glob("events.out.tfevents.*"))
    rep = json.loads((run / "report.json").read_text())
    assert rep["split"] == "test" and set(rep["per_class"]) == {"background", "rectangle", "disc"}
    assert rep["miou"] > 0.4  # well above chance after 16 steps on generated shapes
    assert rep["training"]["train_images_per_s"] > 0 and rep["training"]["steps"] == 8
    saved = load_config(run / "config.yaml")
    assert saved["trainer"]["max_epochs"] == 4 and saved["data"]["options"]["n"] == 8


def test_interrupted_training_resumes_exactly(tmp_path):
    full = train(tiny(tmp_path / "a", augment={"rotate": 20, "scale": [0.8, 1.2], "crop": [28, 28]}),
                 log=lambda s: None)
    cfg = tiny(tmp_path / "b", augment={"rotate": 20, "scale": [0.8, 1.2], "crop": [28, 28]})
    with pytest.raises(RuntimeError, match="simulated interruption"):
        train(cfg, callbacks=[Interrupt()], log=lambda s: None)
    run_b = Path(cfg["run"]["dir"]) / cfg["name"]
    assert (run_b / "checkpoints/last.ckpt").is_file() and not (run_b / "last.pt").exists()
    assert json.loads((run_b / "summary.json").read_text())["status"] == "failed"
    messages = []
    train(cfg, log=messages.append)
    assert any("resuming from" in m for m in messages)
    summary = json.loads((run_b / "summary.json").read_text())
    assert [(s["status"], s["from_epoch"], s["to_epoch"]) for s in summary["sessions"]] == \
        [("failed", 0, 2), ("finished", 2, 3)]
    assert (run_b / "logs/metrics.csv").read_text() == (full / "logs/metrics.csv").read_text()
    a, b = _weights(full / "last.pt"), _weights(run_b / "last.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_early_stopping_and_class_weights(tmp_path):
    cfg = tiny(tmp_path, optimizer={"lr": 0.0}, trainer={"max_epochs": 20},
               early_stopping={"patience": 2}, loss={"class_weights": "median"})
    run = train(cfg, log=lambda s: None)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] <= 4  # the score never improves with lr 0: stops after 1 + patience epochs
    hp = torch.load(run / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)["hyper_parameters"]
    w = np.array(hp["class_weights"])
    assert w.shape == (3,) and w.mean() == pytest.approx(1.0) and w[0] < w[1] and w[0] < w[2]


def test_data_set_that_fails_its_check_is_refused(tmp_path):
    for split in ("train", "val"):
        for i in range(2):
            (tmp_path / f"d/{split}/images").mkdir(parents=True, exist_ok=True)
            (tmp_path / f"d/{split}/masks").mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / f"d/{split}/images/{i}.png")
            Image.fromarray(np.full((16, 16), 4 * i, np.uint8)).save(tmp_path / f"d/{split}/masks/{i}.png")
    (tmp_path / "d/classes.txt").write_text("a\nb\nc\n")
    cfg = tiny(tmp_path)
    cfg["data"].update(root=str(tmp_path / "d"), format="folder", options={})  # train() validates it
    with pytest.raises(SeglabError, match=r"split 'train' fails its check: bad labels: 1.png: values \[4\]"):
        train(cfg, log=lambda s: None)
