"""Ctrl-C (SIGINT) and SIGTERM: one line on stderr, exit code 130; ``segment`` and ``predict`` keep the images
they finished (label map and overlay both) and leave no temporary file and no partial output."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import seglab.cli.classical as cli_classical
from seglab.cli.main import main
from seglab.errors import Interrupted

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _images(folder: Path, n: int, size: int) -> list[Path]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
        img[size // 4: 3 * size // 4, size // 4: 3 * size // 4] += 150
        p = folder / f"img{i:03d}.png"
        Image.fromarray(img).save(p)
        paths.append(p)
    return paths


def _check_out_folder(out: Path, reported: int, overlays: bool = True):
    """Every output is complete: no temporary file, label maps and overlays in pairs, all readable."""
    names = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert not [n for n in names if n.startswith(".")], names       # atomic writers' temporaries removed
    labels = [n for n in names if not n.endswith("_overlay.png")]
    assert len(labels) == reported, (labels, reported)
    if overlays:
        assert sorted(n.replace("_overlay", "") for n in names if n.endswith("_overlay.png")) == labels
    for n in names:
        with Image.open(out / n) as im:
            im.load()  # a truncated PNG raises here


def _stderr_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _env():
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_segment_process_interrupted_keeps_finished_images(tmp_path, sig):
    files = _images(tmp_path / "in", 150, 96)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "seglab.cli.main", "segment", *map(str, files), "-m", "slic",
                             "-o", str(out), "--overlay"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env())
    seen = 0
    while seen < 3:  # let it finish a few images first
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        seen += "labels in" in line
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    line = _stderr_line(err)
    assert line.startswith("interrupted after ") and f"of {len(files)} images" in line
    done = int(line.split()[2])
    assert 3 <= done < len(files)
    _check_out_folder(out, done)


def test_segment_interrupted_in_process(tmp_path, monkeypatch, capsys):
    files = _images(tmp_path / "in", 5, 24)
    real, calls = cli_classical.run_segment, []

    def stop_at_third(image, method, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(image, method, **kw)

    monkeypatch.setattr(cli_classical, "run_segment", stop_at_third)
    assert main(["segment", *map(str, files), "-m", "otsu", "-o", str(tmp_path / "out"), "--overlay"]) == 130
    assert _stderr_line(capsys.readouterr().err).startswith("interrupted after 2 of 5 images")
    _check_out_folder(tmp_path / "out", 2)


def test_any_command_interrupted_is_one_line_130(monkeypatch, capsys):
    def boom():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_classical, "methods", boom)
    assert main(["methods"]) == 130
    assert _stderr_line(capsys.readouterr().err) == "interrupted by Ctrl-C"

    def stopped():
        raise Interrupted("stopped at epoch 3; run the same command again to resume")

    monkeypatch.setattr(cli_classical, "methods", stopped)
    assert main(["methods"]) == 130
    assert _stderr_line(capsys.readouterr().err) == "stopped at epoch 3; run the same command again to resume"


def test_main_restores_signal_handlers():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert main(["--version"]) == 0
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def _tiny_checkpoint(path: Path) -> Path:
    from seglab.data.base import DatasetInfo, default_palette
    from seglab.models import create, save_checkpoint

    model = create("unet", 3, base_width=8, depth=2, variant="padded")
    info = DatasetInfo("synthetic", ("background", "rectangle", "disc"), default_palette(3))
    return save_checkpoint(path, model, extra={"info": info.to_dict(), "mean": [0.5] * 3, "std": [0.25] * 3,
                                               "train_config": {}})


def test_predict_process_terminated_keeps_finished_images(tmp_path):
    """SIGTERM (what ``kill`` and job schedulers send) behaves as Ctrl-C does for segment above."""
    ckpt = _tiny_checkpoint(tmp_path / "tiny.pt")
    files = _images(tmp_path / "in", 120, 192)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "seglab.cli.main", "predict", str(ckpt), str(tmp_path / "in"),
                             "-o", str(out), "--overlay"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env())
    deadline = time.monotonic() + 240
    while not (out.is_dir() and len(list(out.glob("img*_overlay.png"))) >= 2):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    line = _stderr_line(err)
    assert line.startswith("interrupted after ") and f"of {len(files)} images" in line
    done = int(line.split()[2])
    assert 2 <= done < len(files)
    _check_out_folder(out, done)
