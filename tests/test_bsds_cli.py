"""``seglab bsds run`` / ``seglab bsds eval``: outputs, sweeps and user errors (exit code 2)."""
import json

import numpy as np
import pytest

from seglab import get_method
from seglab.bsds.runner import default_sweep_values, parse_sweep
from seglab.cli.main import main
from seglab.errors import ParameterError


def test_eval_bench_ucm2_writes_json(data_dir, tmp_path, capsys):
    bench = data_dir / "bsds500" / "bench"
    out = tmp_path / "res.json"
    code = main(["bsds", "eval", "--pred", str(bench / "ucm2"), "--gt", str(bench / "groundTruth"),
                 "--nthresh", "5", "--workers", "1", "--limit", "2", "--json", str(out)])
    assert code == 0
    summary = json.loads(out.read_text())
    assert summary["images"] == 2
    assert 0 < summary["region"]["covering"]["ods"] <= summary["region"]["covering"]["ois"] <= 1
    assert 0 < summary["boundary"]["ods"]["f"] <= summary["boundary"]["ois"]["f"] <= 1
    assert len(summary["region"]["per_image"]) == 2


def test_run_method_with_sweep(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SEGLAB_DATA", str(data_dir))
    out = tmp_path / "run.json"
    code = main(["bsds", "run", "--method", "multi_otsu", "--sweep", "k=2,4", "--split", "test", "--limit", "1",
                 "--workers", "1", "--json", str(out)])
    assert code == 0
    s = json.loads(out.read_text())
    assert s["method"] == "multi_otsu" and s["sweep"] == {"param": "k", "values": [2, 4]}
    assert [r["threshold"] for r in s["region"]["per_threshold"]] == [2.0, 4.0]
    assert s["region"]["covering"]["ods"] == pytest.approx(s["region"]["covering"]["ois"])  # one image
    assert s["median_seconds_per_segmentation"] > 0


@pytest.mark.parametrize("args, message", [
    (["bsds", "eval", "--pred", "/no/such/dir", "--gt", "/no/such/gt"], "no such folder"),
    (["bsds", "run", "--method", "nope"], "unknown method"),
    (["bsds", "run", "--method", "multi_otsu", "--sweep", "k=1"], "'k' must be >= 2"),
    (["bsds", "run", "--method", "multi_otsu", "--sweep", "bogus=1,2"], "no parameter 'bogus'"),
    (["bsds", "run", "--method", "otsu", "--sweep", "auto"], "no scale parameter"),
    (["bsds", "run", "--method", "multi_otsu", "--split", "holdout"], "'split' must be one of"),
    (["bsds", "run", "--method", "multi_otsu", "--limit", "0"], "'limit' must be >= 1"),
    (["bsds", "eval", "--pred", ".", "--nthresh", "0"], "nthresh"),
])
def test_user_errors_exit_2(args, message, data_dir, monkeypatch, capsys):
    monkeypatch.setenv("SEGLAB_DATA", str(data_dir))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_data_root_is_a_user_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEGLAB_DATA", str(tmp_path))
    assert main(["bsds", "run", "--method", "multi_otsu", "--limit", "1"]) == 2
    assert "BSDS500 not found" in capsys.readouterr().err


def test_default_sweep_grid():
    m = get_method("multi_otsu")
    assert default_sweep_values(m, "k", n=5) == [2, 3, 4, 5]   # small integers step by one, clipped at 2
    f = get_method("felzenszwalb")
    vals = default_sweep_values(f, "scale", n=5, factor=4)
    assert len(vals) == 5 and vals[2] == f.param("scale").default
    assert vals[0] * 16 == pytest.approx(vals[-1])
    a = get_method("adaptive_threshold")   # block sizes must be odd: even grid values move up by one
    assert all(v % 2 == 1 for v in parse_sweep(a, "block_size").values)
    sw = parse_sweep(f, "auto")
    assert sw.param == f.scale_param and len(sw.values) >= 3
    with pytest.raises(ParameterError):
        parse_sweep(m, "nbins=")
    assert parse_sweep(m, None) is None
    assert np.all(np.diff(parse_sweep(m, "k=2,3,5").values) > 0)
