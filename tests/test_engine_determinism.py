"""Deterministic training must not fail on ops that have no deterministic CPU kernel (SegNet's max-unpooling)."""
from pathlib import Path

from seglab.engine import load_config, train

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


def test_segnet_trains_with_determinism_requested(tmp_path):
    cfg = load_config(CONFIG, overrides={
        "run": {"dir": str(tmp_path)}, "data": {"options": {"n": 4, "size": 32}},
        "trainer": {"max_epochs": 1, "progress": False, "deterministic": True}})
    cfg["model"] = {**cfg["model"], "name": "segnet", "options": {}}
    run = train(cfg, log=lambda s: None)
    assert (run / "report.json").is_file()
