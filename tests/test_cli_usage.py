"""Usage errors and out-of-range options: one line on stderr naming the option, exit code 2, no traceback."""
import subprocess
import sys

import pytest

from seglab.cli.main import main


def _one_error(capsys) -> str:
    out, err = capsys.readouterr()
    assert out == "", out  # no help page beside the one line
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("args, names", [
    ([], "Missing command"),
    (["bsds"], "Missing command (see 'seglab bsds --help')"),
    (["data"], "Missing command (see 'seglab data --help')"),
    (["no-such-command"], "no-such-command"),
    (["methods", "--no-such-option"], "--no-such-option"),
    (["segment"], "images"),                                  # missing argument
    (["segment", "a.png"], "--method"),                       # missing required option
    (["segment", "a.png", "-m", "otsu"], "--out"),
    (["bsds", "run"], "--method"),
    (["bsds", "frobnicate"], "frobnicate"),
    (["export", "a.pt"], "--onnx"),
    (["predict", "a.pt", "b.png", "--overlap"], "--overlap"),  # an option without its value
    (["bsds", "eval", "--pred", ".", "--nthresh", "many"], "--nthresh"),  # not an integer
])
def test_usage_errors_one_line_exit_2(args, names, capsys):
    assert main(args) == 2
    err = _one_error(capsys)
    assert names in err and "--help" in err


@pytest.mark.parametrize("args, names", [
    (["predict", "a.pt", "b.png", "-o", "o", "--overlap", "1"], "--overlap must be in [0, 1)"),
    (["predict", "a.pt", "b.png", "-o", "o", "--overlap", "-0.1"], "--overlap must be in [0, 1)"),
    (["predict", "a.pt", "b.png", "-o", "o", "--window", "box"], "--window must be one of gaussian, cosine, uniform"),
    (["predict", "a.pt", "b.png", "-o", "o", "--tile", "0"], "--tile"),
    (["predict", "a.pt", "b.png", "-o", "o", "--tile", "32x"], "--tile"),
    (["predict", "a.pt", "b.png", "-o", "o", "--tile", "ax3"], "--tile"),
    (["predict", "a.pt", "b.png", "-o", "o", "--scales", "1,0"], "--scales"),
    (["predict", "a.pt", "b.png", "-o", "o", "--scales", "1,x"], "--scales"),
    (["evaluate", "a.pt", "--data", ".", "-f", "folder", "--overlap", "2"], "--overlap must be in [0, 1)"),
    (["evaluate", "a.pt", "--data", ".", "-f", "folder", "--window", "hann"], "--window"),
    (["evaluate", "a.pt", "--data", ".", "-f", "folder", "--tolerance", "-1"], "--tolerance must be >= 0"),
    (["evaluate", "a.pt", "--data", ".", "-f", "folder", "--tile", "-5"], "--tile"),
    (["export", "a.pt", "--onnx", "a.onnx", "--opset", "1"], "--opset must be in [18, 23]"),
    (["export", "a.pt", "--onnx", "a.onnx", "--opset", "99"], "--opset must be in [18, 23]"),
    (["export", "a.pt", "--onnx", "a.onnx", "--height", "0"], "--height must be >= 1"),
    (["export", "a.pt", "--onnx", "a.onnx", "--width", "-3"], "--width must be >= 1"),
    (["bsds", "eval", "--pred", ".", "--workers", "0"], "'workers' must be >= 1"),
    (["bsds", "run", "-m", "otsu", "--workers", "0"], "'workers' must be >= 1"),
    (["bsds", "eval", "--pred", ".", "--nthresh", "0"], "nthresh"),
    (["bsds", "eval", "--pred", ".", "--limit", "0"], "'limit' must be >= 1"),
    (["bsds", "eval", "--pred", ".", "--split", "holdout"], "'split' must be one of"),
])
def test_out_of_range_options_are_refused_before_work(args, names, tmp_path, monkeypatch, capsys):
    """The files named do not exist: the option is checked first, so its message is the one shown."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEGLAB_DATA", str(tmp_path))
    assert main(args) == 2
    err = _one_error(capsys)
    assert names in " ".join(err.split()), err


def test_help_still_exits_0(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "segment" in out and "predict" in out and "export" in out
    assert main(["predict", "--help"]) == 0
    assert "--overlap" in capsys.readouterr().out


def test_usage_error_in_a_real_process_is_one_line():
    for args in ([], ["segment", "x.png"], ["bogus"]):
        r = subprocess.run([sys.executable, "-m", "seglab.cli.main", *args], capture_output=True, text=True)
        assert r.returncode == 2, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr


def test_cli_does_not_import_click():
    """typer vendors its own click; seglab must not need the separate package (pyproject does not list it)."""
    code = ("import sys; import seglab.cli.main as m; assert m.main(['methods', '--json']) == 0; "
            "sys.stderr.write(str(sorted(k for k in sys.modules if k == 'click' or k.startswith('click.'))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "[]"
