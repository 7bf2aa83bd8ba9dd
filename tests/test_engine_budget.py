"""Training per CPU-hour: the CPU-time budget (``trainer.max_cpu_minutes``), bfloat16 mixed precision with
its float32 fallback, channels-last, and ImageNet encoders trained and predicted with ImageNet statistics."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import seglab.engine.budget as budget
import seglab.engine.precision as precision
from seglab.engine import load_config, train
from seglab.engine.checkpoint import load_trained
from seglab.errors import ParameterError

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


def tiny(tmp_path, sets=None, **over):
    base = {"run": {"dir": str(tmp_path)}, "data": {"options": {"n": 8, "size": 32}},
            "trainer": {"max_epochs": 3, "progress": False}}
    for k, v in over.items():
        base[k] = {**base.get(k, {}), **v}
    return load_config(CONFIG, sets, overrides=base)


def test_process_tree_cpu_time_counts_live_children():
    child = subprocess.Popen([sys.executable, "-c", "import time\nt = time.process_time()\n"
                              "while time.process_time() - t < 0.6: pass\ntime.sleep(30)"])
    try:
        before = budget.process_tree_cpu_seconds()
        deadline = time.time() + 60
        while budget.process_tree_cpu_seconds() - before < 0.4 and time.time() < deadline:
            time.sleep(0.1)
        assert budget.process_tree_cpu_seconds() - before >= 0.4  # the child's busy loop, while it lives
    finally:
        child.kill()
        child.wait()


def test_cpu_budget_stops_training_cleanly_and_resumes_with_more(tmp_path, monkeypatch):
    clock = {"t": 0.0}

    def fake():  # every reading of the clock costs 1 CPU-second
        clock["t"] += 1.0
        return clock["t"]

    monkeypatch.setattr(budget, "process_tree_cpu_seconds", fake)
    cfg = tiny(tmp_path, trainer={"max_epochs": 50, "max_cpu_minutes": 0.1})  # 6 "seconds"
    run = train(cfg, log=lambda s: None)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and 1 <= summary["steps"] < 10  # stopped long before 50 epochs
    for f in ("last.pt", "best.pt", "report.json", "checkpoints/last.ckpt"):
        assert (run / f).is_file(), f
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    used = next(v for k, v in ckpt["callbacks"].items() if "CpuBudget" in k)["cpu_seconds"]
    assert used >= 6 and summary["sessions"][-1]["budget_cpu_seconds"] >= 6
    # a larger budget continues the finished run from its checkpoint, counting the CPU time already spent
    more = train(tiny(tmp_path, trainer={"max_epochs": 50, "max_cpu_minutes": 0.2}), log=lambda s: None)
    again = json.loads((more / "summary.json").read_text())
    assert summary["steps"] < again["steps"] < 25


def test_bf16_falls_back_to_float32_with_one_note(tmp_path, monkeypatch):
    notes = []
    monkeypatch.setattr(precision, "cpu_bf16_supported", lambda: False)
    assert precision.resolve_precision("bf16-mixed", "cpu", notes.append) == "32-true"
    assert len(notes) == 1 and "bfloat16" in notes[0] and "\n" not in notes[0]
    assert precision.resolve_precision("32-true", "cpu", notes.append) == "32-true" and len(notes) == 1
    messages = []
    train(tiny(tmp_path, trainer={"max_epochs": 1, "precision": "bf16-mixed"}), log=messages.append)
    assert sum("training in float32" in m for m in messages) == 1
    monkeypatch.setattr(precision, "cpu_bf16_supported", lambda: True)
    assert precision.resolve_precision("bf16-mixed", "cpu", notes.append) == "bf16-mixed" and len(notes) == 1


@pytest.mark.skipif(not precision.cpu_bf16_supported(), reason="this CPU has no bfloat16 arithmetic")
def test_bf16_mixed_training_learns_like_float32(tmp_path):
    scores = {}
    for p in ("32-true", "bf16-mixed"):
        run = train(tiny(tmp_path / p, trainer={"max_epochs": 4, "precision": p}), log=lambda s: None)
        scores[p] = json.loads((run / "report.json").read_text())["miou"]
    assert scores["bf16-mixed"] > 0.4 and abs(scores["bf16-mixed"] - scores["32-true"]) < 0.15


def test_channels_last_trains_the_same_network(tmp_path):
    runs = [train(tiny(tmp_path / str(cl), trainer={"max_epochs": 1, "channels_last": cl}), log=lambda s: None)
            for cl in (False, True)]
    a, b = (torch.load(r / "last.pt", weights_only=True)["state_dict"] for r in runs)
    for k in a:
        torch.testing.assert_close(a[k].float(), b[k].float(), atol=1e-4, rtol=1e-3)


def test_persistent_data_workers_train_the_same_network(tmp_path):
    """Workers that live across epochs still augment each epoch afresh: 1 worker == no worker, bit for bit."""
    runs = [train(tiny(tmp_path / str(w), data={"workers": w}, augment={"scale": [0.8, 1.2], "crop": [28, 28]},
                       trainer={"max_epochs": 2}), log=lambda s: None) for w in (0, 1)]
    a, b = (torch.load(r / "last.pt", weights_only=True)["state_dict"] for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_imagenet_encoder_trains_and_predicts_with_imagenet_statistics(tmp_path, weights_dir, monkeypatch):
    monkeypatch.setenv("SEGLAB_WEIGHTS", str(weights_dir))
    cfg = tiny(tmp_path, model={"encoder": "mobilenet_v2", "encoder_weights": "imagenet",
                                "options": {"base_width": 4}}, trainer={"max_epochs": 1})
    run = train(cfg, log=lambda s: None)
    monkeypatch.setenv("SEGLAB_WEIGHTS", str(tmp_path / "empty"))  # the checkpoint alone rebuilds the model
    for name in ("last.pt", "checkpoints/last.ckpt"):
        trained = load_trained(run / name)
        assert list(trained.mean) == pytest.approx([0.485, 0.456, 0.406])
        assert list(trained.std) == pytest.approx([0.229, 0.224, 0.225])


def test_config_validation_of_the_new_keys(tmp_path, weights_dir, monkeypatch):
    monkeypatch.setenv("SEGLAB_WEIGHTS", str(weights_dir))
    cfg = tiny(tmp_path, {"model.encoder": "mobilenet_v2",
                          "model.encoder_weights": "$SEGLAB_WEIGHTS/mobilenet_v2-b0353104.pth"})
    assert cfg["model"]["encoder_weights"] == str(weights_dir / "mobilenet_v2-b0353104.pth")
    bad = {("model.encoder_weights", "imagenet"): "'imagenet' needs model.encoder set to one of",
           ("model.encoder_weights", "/no/such.pth"): "must be 'imagenet' or an existing weights file",
           ("trainer.max_cpu_minutes", "0"): "'trainer.max_cpu_minutes' must be > 0",
           ("trainer.channels_last", "maybe"): "'trainer.channels_last' must be true or false",
           ("trainer.precision", "bf16"): "'trainer.precision' must be one of"}
    for (key, value), msg in bad.items():
        with pytest.raises(ParameterError, match=msg) as e:
            tiny(tmp_path, {key: value})
        assert str(e.value).startswith(f"--set {key}:") and "\n" not in str(e.value)
