"""What `seglab train` does with a run directory that already exists: a config that differs is refused
(the saved config and checkpoints untouched), a finished run says so, raised limits extend it with its
history kept, and a crafted checkpoint is refused without running its code."""
import csv
import json
import os
from pathlib import Path

import pytest
import torch

from seglab.cli.main import main
from seglab.engine import load_config, train
from seglab.engine.rundir import MAY_CHANGE, differences
from seglab.errors import InputFileError, ParameterError

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


def tiny(run_dir, **sets):
    base = {"run.dir": str(run_dir), "data.options.n": "8", "trainer.max_epochs": "2", "trainer.progress": "false"}
    return load_config(CONFIG, {**base, **{k.replace("__", "."): str(v) for k, v in sets.items()}})


class Evil:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return train(tiny(out), log=lambda s: None), out


def _snapshot(run: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file() and "tb" not in p.parts}


def test_another_config_is_refused_and_nothing_changes(finished, capsys):
    run, out = finished
    before = _snapshot(run)
    with pytest.raises(ParameterError) as e:
        train(tiny(out, model__options__base_width=16), log=lambda s: None)
    msg = str(e.value)
    assert "\n" not in msg and "model.options.base_width: 8 there, 16 here" in msg
    assert "--set name=NEW" in msg and f"seglab train {run / 'config.yaml'}" in msg
    assert _snapshot(run) == before  # config, checkpoints, logs and summary untouched
    # the CLI: one line, exit 2
    assert main(["train", str(CONFIG), "--set", f"run.dir={out}", "--set", "data.options.n=8", "--set",
                 "trainer.max_epochs=2", "--set", "optimizer.lr=0.5"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.count("error: ") == 1 and "optimizer.lr: 0.01 there, 0.5 here" in err
    assert _snapshot(run) == before


def test_finished_run_says_so_and_a_raised_limit_extends_it(tmp_path, monkeypatch):
    run = train(tiny(tmp_path), log=lambda s: None)
    before = _snapshot(run)
    messages = []
    assert train(tiny(tmp_path, data__workers=0, trainer__log_every=3), log=messages.append) == run
    assert len(messages) == 1 and messages[0].startswith(f"{run} is finished (2 epochs, 4 steps)")
    assert "--set trainer.max_epochs=N (more than 2)" in messages[0]
    monkeypatch.chdir(tmp_path)  # the same run directory, written as a relative path
    assert train(tiny("."), log=messages.append) == Path("tiny") and "is finished" in messages[-1]
    monkeypatch.undo()
    assert _snapshot(run) == before  # nothing re-run, nothing rewritten
    train(tiny(tmp_path, trainer__max_epochs=3), log=lambda s: None)
    with open(run / "logs/metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(int(r["epoch"]) for r in rows if r["val/mIoU"]) == [0, 1, 2]  # each epoch once
    assert sorted(int(r["epoch"]) for r in rows if r["train/loss_epoch"]) == [0, 1, 2]
    summary = json.loads((run / "summary.json").read_text())
    assert [(s["status"], s["from_epoch"], s["to_epoch"]) for s in summary["sessions"]] == \
        [("finished", 0, 2), ("finished", 2, 3)]
    assert summary["epochs"] == 3 and summary["steps"] == 6
    assert load_config(run / "config.yaml")["trainer"]["max_epochs"] == 3  # the allowed change is recorded


def test_resume_off_refuses_an_existing_run(finished):
    run, out = finished
    with pytest.raises(ParameterError, match="already holds a run and run.resume is false"):
        train(tiny(out, run__resume="false"), log=lambda s: None)


def test_differences_and_what_may_change():
    a = load_config(CONFIG)
    b = load_config(CONFIG, {"trainer.max_epochs": "9", "model.options.depth": "3", "augment.hflip": "0"})
    assert differences(a, b) == [("model.options.depth", 2, 3), ("trainer.max_epochs", 4, 9),
                                 ("augment.hflip", 0.5, 0.0)]
    assert "trainer.max_epochs" in MAY_CHANGE and "model.options.depth" not in MAY_CHANGE


def test_crafted_checkpoints_are_refused_without_running_code(finished, tmp_path, capsys):
    run, out = finished
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "hyper_parameters": Evil(marker)}, evil)
    from seglab.engine.checkpoint import load_trained

    with pytest.raises(InputFileError) as e:
        load_trained(evil)
    assert "refused" in str(e.value) and "posix.system" in str(e.value) and "\n" not in str(e.value)
    assert not marker.exists()
    # seglab evaluate / predict: one line, exit 2
    assert main(["evaluate", str(evil), "--data", ".", "--format", "synthetic"]) == 2
    assert "refused" in capsys.readouterr().err
    img = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(img)
    assert main(["predict", str(evil), str(img), "--out", str(tmp_path / "pred")]) == 2
    assert "refused" in capsys.readouterr().err and not (tmp_path / "pred").exists()
    # what Lightning's own resume (Trainer.fit(ckpt_path=...)) reads checkpoints with
    from seglab.engine.train import SafeCheckpointIO

    with pytest.raises(InputFileError, match="refused"):
        SafeCheckpointIO().load_checkpoint(evil, weights_only=False)
    # resume from a crafted last.ckpt
    last = run / "checkpoints" / "last.ckpt"
    good = last.read_bytes()
    (run / "summary.json").rename(run / "summary.json.bak")
    try:
        last.write_bytes(evil.read_bytes())
        with pytest.raises(InputFileError, match="last.ckpt: refused"):
            train(tiny(out), log=lambda s: None)
    finally:
        last.write_bytes(good)
        (run / "summary.json.bak").rename(run / "summary.json")
    assert not marker.exists()


def test_lightning_checkpoints_load_with_weights_only(tmp_path):
    """Early stopping and a time limit add callback state; the file still holds only plain data."""
    run = train(tiny(tmp_path, early_stopping__patience=1, trainer__max_minutes=5), log=lambda s: None)
    for name in ("checkpoints/last.ckpt", "checkpoints/best.ckpt", "last.pt", "best.pt"):
        obj = torch.load(run / name, map_location="cpu", weights_only=True)
        assert "state_dict" in obj
    ckpt = torch.load(run / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert any(k.startswith("EarlyStopping") for k in ckpt["callbacks"])
    assert any(k.startswith("Timer") for k in ckpt["callbacks"])
