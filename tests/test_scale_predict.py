"""Prediction over many images (seglab.scale): shards, list files, resume, unreadable images, a local process
pool that loses a worker, Ray actors, and an unreachable Ray cluster."""
import json
import multiprocessing
import os
import signal
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.cli.main import main
from seglab.errors import ParameterError, SeglabError
from seglab.scale.inputs import env_shard, image_files, parse_shard, shard
from seglab.scale.run import predict_many
from seglab.scale.worker import PredictJob, Worker


def _one_error(capsys) -> str:
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error: ") and err.count("error: ") == 1, err
    return err


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    import torch

    from seglab.data.base import DatasetInfo, default_palette
    from seglab.models import create, save_checkpoint

    torch.manual_seed(0)
    model = create("unet", 3, base_width=4, depth=2, variant="padded")
    info = DatasetInfo("synthetic", ("background", "rectangle", "disc"), default_palette(3))
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", model,
                           extra={"info": info.to_dict(), "mean": [0.5] * 3, "std": [0.25] * 3, "train_config": {}})


def _images(folder: Path, n: int, bad: bool = True) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    files = []
    for i in range(n):
        files.append(folder / f"img{i:02d}.png")
        Image.fromarray((rng.random((24, 40, 3)) * 255).astype(np.uint8)).save(files[-1])
    if bad:
        (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return files


def test_shards_partition_the_images_exactly_once():
    items = [f"f{i}" for i in range(23)]
    for n in range(1, 7):
        parts = [shard(items, i, n) for i in range(n)]
        assert sorted(sum(parts, [])) == sorted(items)
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert parse_shard("2/5") == (2, 5) and parse_shard(None) is None
    for bad in ("5/5", "-1/3", "1", "a/b", "1/0"):
        with pytest.raises(ParameterError, match="--shard"):
            parse_shard(bad)
    assert env_shard({"RANK": "1", "WORLD_SIZE": "3"}) == (1, 3)
    assert env_shard({"RANK": "0", "WORLD_SIZE": "1"}) is None and env_shard({}) is None
    with pytest.raises(ParameterError, match="RANK"):
        env_shard({"RANK": "3", "WORLD_SIZE": "3"})


def test_list_file(tmp_path, monkeypatch):
    files = _images(tmp_path / "in", 3, bad=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "list.txt").write_text(f"# images\n\nin/img02.png\n{files[0]}\n")
    assert image_files(["@list.txt", "in/img01.png"]) == [Path("in/img02.png"), files[0], Path("in/img01.png")]
    (tmp_path / "list.txt").write_text("in/img02.png\nin/nope.png\n")
    with pytest.raises(SeglabError, match="list.txt line 2: in/nope.png: no such file"):
        image_files(["@list.txt"])
    with pytest.raises(SeglabError, match="no such list file"):
        image_files(["@missing.txt"])


def test_resume_skips_finished_images_and_unreadable_ones_are_listed(ckpt, tmp_path, capsys):
    files = _images(tmp_path / "in", 4)
    out = tmp_path / "out"
    args = ["predict", str(ckpt), str(tmp_path / "in"), "-o", str(out), "--resume"]
    assert main(args) == 2
    err = _one_error(capsys)
    assert "1 of 5 images failed" in err and "bad.png: truncated or corrupt image" in err and "failed.json" in err
    listed = json.loads((out / "failed.json").read_text())
    assert [f["input"] for f in listed["failed"]] == [str(tmp_path / "in/bad.png")] and listed["written"] == 4
    assert sorted(p.name for p in out.glob("*.png")) == [f.name for f in files]
    # what the worker writes is what the plain loop of seglab predict writes
    assert main(["predict", str(ckpt), *map(str, files), "-o", str(tmp_path / "plain")]) == 0
    for f in files:
        assert np.array_equal(np.asarray(Image.open(out / f.name)), np.asarray(Image.open(tmp_path / "plain" / f.name)))
    # re-run: the four finished images are skipped (not rewritten), the bad one is tried and listed again
    stamps = {f.name: (out / f.name).stat().st_mtime_ns for f in files}
    (out / files[1].name).unlink()
    assert main(args) == 2
    assert "1 of 5 images failed" in _one_error(capsys)
    assert all((out / n).stat().st_mtime_ns == t for n, t in stamps.items() if n != files[1].name)
    assert (out / files[1].name).is_file()
    # the bad image fixed: nothing fails, the stale list goes
    (tmp_path / "in/bad.png").unlink()
    assert main(args) == 0
    assert "0 of 4 images written" in capsys.readouterr().out.replace("\n", " ")
    assert not (out / "failed.json").exists()


def test_shard_writes_its_own_images_and_failed_list(ckpt, tmp_path):
    files = _images(tmp_path / "in", 5)
    job = PredictJob(str(ckpt), str(tmp_path / "out"))
    worker = Worker(job)
    every = sorted(files + [tmp_path / "in/bad.png"])
    reports = [predict_many(job, every, shard=(i, 2), worker=worker) for i in range(2)]
    assert sorted(r["input"] for rep in reports for r in rep.records) == sorted(map(str, every))
    names = [rep.failed_path.name if rep.failed_path else None for rep in reports]
    assert names == ["failed-0-of-2.json", None]  # bad.png sorts first: shard 0


def _kill_workers(done, total):
    """progress callback: after the first image, SIGKILL the pool's processes (once), one of them busy with
    the next image."""
    if done == 1 and not getattr(_kill_workers, "fired", False):
        _kill_workers.fired = True
        for p in multiprocessing.active_children():
            os.kill(p.pid, signal.SIGKILL)


def test_local_pool_reruns_the_images_of_killed_workers(ckpt, tmp_path):
    files = _images(tmp_path / "in", 6)
    job = PredictJob(str(ckpt), str(tmp_path / "out"), threads=1)
    rep = predict_many(job, files + [tmp_path / "in/bad.png"], engine="local", workers=2, progress=_kill_workers)
    assert _kill_workers.fired
    assert rep.written == 6 and [f["input"] for f in rep.failed] == [str(tmp_path / "in/bad.png")]
    assert len({r["pid"] for r in rep.records}) >= 2  # a second pool took over
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == [f.name for f in files]
    assert not list((tmp_path / "out").glob(".*"))  # no temporary file left by the killed worker


def test_ray_actors(ckpt, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'seglab[ray]')")
    pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'seglab[ray]')")
    files = _images(tmp_path / "in", 3)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        job = PredictJob(str(ckpt), str(tmp_path / "out"), threads=1)
        rep = predict_many(job, files + [tmp_path / "in/bad.png"], engine="ray", workers=1)
    finally:
        ray.shutdown()
    assert rep.written == 3 and len(rep.failed) == 1 and "truncated" in rep.failed[0]["error"]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == [f.name for f in files]
    assert sum(rep.per_node().values()) == 3


def test_unreachable_ray_cluster_is_one_line(ckpt, tmp_path, capsys):
    _images(tmp_path / "in", 1, bad=False)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    base = ["predict", str(ckpt), str(tmp_path / "in"), "-o", str(tmp_path / "out")]
    assert main(base + ["--ray-address", f"127.0.0.1:{port}"]) == 2
    err = _one_error(capsys)
    assert f"Ray cluster at 127.0.0.1:{port} is not reachable" in err and "ray start --head" in err
    assert main(base + ["--ray-address", "nowhere"]) == 2
    assert "--ray-address must be HOST:PORT" in _one_error(capsys)
    assert not (tmp_path / "out").exists()


def test_batch_options_are_checked(ckpt, tmp_path, capsys):
    _images(tmp_path / "in", 1, bad=False)
    base = ["predict", str(ckpt), str(tmp_path / "in"), "-o", str(tmp_path / "out")]
    assert main(base + ["--workers", "0"]) == 2 and "--workers" in _one_error(capsys)
    assert main(base + ["--shard", "3/3"]) == 2 and "--shard" in _one_error(capsys)
    assert main(base + ["--halo", "8"]) == 2 and "--halo is an option of --huge" in _one_error(capsys)
    assert main(base + ["--huge", "--tta"]) == 2 and "--tta does not apply to --huge" in _one_error(capsys)


def test_interrupted_batch_run_resumes(ckpt, tmp_path, capsys, monkeypatch):
    files = _images(tmp_path / "in", 3, bad=False)
    args = ["predict", str(ckpt), str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--resume"]
    real, calls = Worker.run, []

    def stopped_at_the_second(self, image):
        calls.append(image)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, image)

    monkeypatch.setattr(Worker, "run", stopped_at_the_second)
    assert main(args) == 130
    err = " ".join(capsys.readouterr().err.split())
    assert "interrupted after 1 of 3 images" in err and "with --resume to finish the rest" in err
    assert [p.name for p in (tmp_path / "out").iterdir()] == [files[0].name]
    monkeypatch.setattr(Worker, "run", real)
    assert main(args) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "2 of 3 images written" in out and "1 skipped as finished" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f.name for f in files]
