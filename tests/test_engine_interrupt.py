"""Ctrl-C and SIGTERM in the middle of `seglab train`: one Interrupted line that says how to resume, no
temporary files, no partial outputs, the completed epochs kept, and a resume that ends exactly where an
uninterrupted run ends (same weights, same metrics.csv rows, each epoch once)."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from seglab.engine import load_config, train

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "tiny.yaml"
SETS = {"trainer.max_epochs": "4", "data.options.n": "8", "trainer.progress": "false"}

# Trains configs/tiny.yaml with a callback that announces epoch 2 (0-based) in a file after its first batch
# and then waits, so that the test's signal arrives in the middle of that epoch.
DRIVER = r"""
import sys, time
from pathlib import Path
import lightning as L
from seglab.errors import Interrupted

class Gate(L.Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.current_epoch == 2:
            Path(sys.argv[2]).touch()
            time.sleep(120)  # the signal ends the wait: it always lands in this epoch, however loaded the machine

import importlib
engine_train = importlib.import_module("seglab.engine.train")  # the module (seglab.engine.train is the function)
plain = engine_train.train
engine_train.train = lambda cfg, **kw: plain(cfg, callbacks=[Gate()], **kw)
if sys.argv[1] == "api":
    from seglab.engine import load_config
    sets = dict(s.split("=", 1) for s in sys.argv[3:])
    try:
        engine_train.train(load_config(sets.pop("config"), sets), log=lambda s: None)
    except Interrupted as exc:
        print(f"INTERRUPTED {exc}")
        sys.exit(130)
else:
    from seglab.cli.main import main
    sys.exit(main(sys.argv[3:]))
"""


def _rows(run: Path) -> list[dict]:
    with open(run / "logs" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def _interrupt(tmp_path, sig, mode: str, args: list[str]) -> subprocess.CompletedProcess:
    ready = tmp_path / "ready"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, mode, str(ready), *args], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not ready.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert ready.exists(), proc.communicate()[1][-3000:]
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    return train(load_config(CONFIG, {**SETS, "run.dir": str(out)}), log=lambda s: None)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_cleanly_and_the_run_resumes_exactly(tmp_path, sig, uninterrupted):
    args = [f"config={CONFIG}", "run.dir=runs", *(f"{k}={v}" for k, v in SETS.items())]
    done = _interrupt(tmp_path, sig, "api", args)
    assert done.returncode == 130, done.stderr[-3000:]
    run = tmp_path / "runs" / "tiny"
    line = done.stdout.strip().splitlines()[-1]
    assert line == ("INTERRUPTED training interrupted at epoch 3 of 4 (2 completed epochs kept in runs/tiny); "
                    "resume with: seglab train runs/tiny/config.yaml")
    files = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file())
    assert not [f for f in files if Path(f).name.startswith(".")], files   # no temporary files
    assert not {"last.pt", "best.pt", "report.json", "report.md"} & set(files), files  # no partial outputs
    assert {"config.yaml", "checkpoints/last.ckpt", "checkpoints/best.ckpt", "logs/metrics.csv",
            "summary.json"} <= set(files)
    assert sorted({r["epoch"] for r in _rows(run) if r["epoch"]}) == ["0", "1"]  # the completed epochs
    ckpt = torch.load(run / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 1
    # the command of the message resumes the run (from tmp_path, where the relative paths hold)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        messages = []
        train(load_config("runs/tiny/config.yaml"), log=messages.append)
    finally:
        os.chdir(cwd)
    assert any("resuming from" in m for m in messages)
    a = torch.load(uninterrupted / "last.pt", map_location="cpu", weights_only=True)["state_dict"]
    b = torch.load(run / "last.pt", map_location="cpu", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _rows(run) == _rows(uninterrupted)  # every epoch's rows once, with the same values
    summary = json.loads((run / "summary.json").read_text())
    assert [s["status"] for s in summary["sessions"]] == ["interrupted", "finished"]
    assert summary["status"] == "finished" and summary["epochs"] == 4


def _cli_handles_interrupted() -> bool:
    import inspect

    import seglab.cli.main as cli_main

    return "Interrupted" in inspect.getsource(cli_main)


@pytest.mark.skipif(not _cli_handles_interrupted(), reason="needs main() to print seglab.errors.Interrupted (cli)")
def test_cli_prints_one_line_and_exits_130(tmp_path):
    args = ["train", str(CONFIG), "--set", "run.dir=runs",
            *(a for k, v in SETS.items() for a in ("--set", f"{k}={v}"))]
    done = _interrupt(tmp_path, signal.SIGTERM, "cli", args)
    assert done.returncode == 130
    err = [ln for ln in done.stderr.splitlines() if "interrupted" in ln]
    assert len(err) == 1 and "resume with: seglab train runs/tiny/config.yaml" in err[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def test_interruption_before_training_and_during_the_final_export(tmp_path, monkeypatch):
    import importlib

    from seglab.errors import Interrupted

    checkpoint = importlib.import_module("seglab.engine.checkpoint")
    cfg = load_config(CONFIG, {**SETS, "trainer.max_epochs": "1", "run.dir": str(tmp_path)})

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    semantic_task = importlib.import_module("seglab.engine.tasks.semantic")  # where the data check runs
    with monkeypatch.context() as m:  # Ctrl-C during the data check: nothing was written
        m.setattr(semantic_task, "check_splits", ctrl_c)
        with pytest.raises(Interrupted, match=r"before its first epoch \(nothing written\)"):
            train(cfg, log=lambda s: None)
    assert not (tmp_path / "tiny").exists()
    plain_export = checkpoint.export
    with monkeypatch.context() as m:  # Ctrl-C while exporting the trained model
        m.setattr(checkpoint, "export", ctrl_c)
        with pytest.raises(Interrupted, match="while exporting and evaluating .* finish with: seglab train"):
            train(cfg, log=lambda s: None)
    run = tmp_path / "tiny"
    assert not (run / "last.pt").exists() and (run / "checkpoints/last.ckpt").is_file()
    assert not [p for p in run.rglob(".*")]
    assert checkpoint.export is plain_export
    train(cfg, log=lambda s: None)  # the same command finishes the run without training again
    summary = json.loads((run / "summary.json").read_text())
    assert (run / "last.pt").is_file() and summary["status"] == "finished" and summary["epochs"] == 1
    assert [(s["status"], s["from_epoch"], s["to_epoch"]) for s in summary["sessions"]] == \
        [("interrupted", 0, 1), ("finished", 1, 1)]  # the second session trained nothing
