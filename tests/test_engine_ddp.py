"""Distributed data parallel on CPU: ``torchrun`` with 2 gloo processes gives the validation metrics of a
1-process run with the same global batch (same samples per step, same augmentation, gradients averaged).

Augmentations that bring in ignored pixels (rotation, padding) are left out: with them each process
averages its loss over a different number of pixels, and the mean of the two means is not the global mean.
"""
import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from seglab.cli.main import main

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
# no batch norm: PyTorch's SyncBatchNorm is GPU-only, so on CPU batch statistics would be per process
SETS = ["--set", "model.options.batch_norm=false", "--set", "trainer.max_epochs=3", "--set", "data.options.n=8",
        "--set", "data.test_split=null", "--set", "data.batch_size=4"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _val_rows(run: Path) -> list[dict]:
    with open(run / "logs" / "metrics.csv") as f:
        return [r for r in csv.DictReader(f) if r.get("val/mIoU")]


def test_two_processes_match_one(tmp_path):
    one = tmp_path / "one"
    assert main(["train", str(CONFIG), "--set", f"run.dir={one}", *SETS]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "seglab.cli.main", "train", str(CONFIG),
           "--set", f"run.dir={tmp_path / 'two'}", *SETS]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = _val_rows(one / "tiny"), _val_rows(tmp_path / "two" / "tiny")
    assert len(a) == len(b) == 3
    for ra, rb in zip(a, b):
        assert ra["step"] == rb["step"]  # same number of optimiser steps: the global batch is the same
        for k in ("val/mIoU", "val/pixel_accuracy", "val/mean_accuracy"):
            assert float(ra[k]) == pytest.approx(float(rb[k]), abs=5e-3), (k, ra["epoch"])
    assert float(a[-1]["val/pixel_accuracy"]) > 0.5  # the runs learned something, so the match means something
    assert (tmp_path / "two" / "tiny" / "last.pt").is_file() and (tmp_path / "two" / "tiny" / "summary.json").is_file()
