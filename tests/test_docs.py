"""Every ```python and ```bash block of README.md and docs/*.md runs as written.

Blocks of one file run in order: Python blocks in one shared namespace, bash blocks with ``bash -e``,
all in one scratch folder per file (``configs/`` and ``benchmarks/`` of the repository are linked into it,
``SEGLAB_DATA`` / ``SEGLAB_WEIGHTS`` point at the data and weights as for the tests).

An HTML comment on the line before a fence changes how its block runs:

* ``<!-- doctest: slow -->``: a long block (a real training run, a full benchmark); it runs with
  ``pytest -m slow`` only, and so must every later block of that file that needs its outputs;
* ``<!-- doctest: setup-command -->``: a set-up command of the README (installation); ``.ci/run`` runs
  it, and :func:`test_ci_runs_the_readme_setup_commands` checks that it does, word for word.

Blocks in other languages (```text, ```yaml, plain fences) are not run.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"(?:<!--\s*doctest:\s*(?P<directive>[\w-]+)\s*-->\s*\n)?^```(?P<lang>[\w-]*)[^\n]*\n"
                   r"(?P<code>.*?)^```\s*$", re.S | re.M)
DIRECTIVES = {"slow", "setup-command"}
BLOCK_TIMEOUT_S = 600


def blocks(path: Path):
    """(line, lang, directive, code) of each fenced block of ``path``."""
    text = path.read_text()
    out = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start("code")) + 1
        directive = m.group("directive")
        if directive is not None and directive not in DIRECTIVES:
            raise AssertionError(f"{path.name}:{line}: unknown doctest directive {directive!r}")
        out.append((line, m.group("lang"), directive, m.group("code")))
    return out


def _environment(slow: bool) -> dict:
    from conftest import DATA

    env = dict(os.environ)
    env["SEGLAB_DATA"] = str(DATA)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _run_file(path: Path, tmp_path: Path, monkeypatch, slow: bool):
    runnable = [b for b in blocks(path) if b[1] in ("python", "bash") and b[2] != "setup-command"]
    if not runnable:
        pytest.skip(f"{path.name} has no runnable block")
    if not slow and all(b[2] == "slow" for b in runnable):
        pytest.skip(f"{path.name}: every block is marked slow")
    for name in ("configs", "benchmarks"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = _environment(slow)
    monkeypatch.chdir(tmp_path)
    for key in ("SEGLAB_DATA",):
        monkeypatch.setenv(key, env[key])
    namespace: dict = {"__name__": "__doc__"}
    ran = 0
    for line, lang, directive, code in runnable:
        if directive == "slow" and not slow:
            continue
        where = f"{path.relative_to(ROOT)}:{line}"
        if lang == "python":
            try:
                exec(compile(code, where, "exec"), namespace)
            except Exception as exc:  # the block's own error, with where it stands in the docs
                raise AssertionError(f"{where}: python block failed: {type(exc).__name__}: {exc}") from exc
        else:
            proc = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
            assert proc.returncode == 0, (f"{where}: bash block exited {proc.returncode}\n{code}\n"
                                          f"--- stderr ---\n{proc.stderr[-3000:]}\n--- stdout ---\n{proc.stdout[-2000:]}")
        ran += 1
    assert ran, f"{path.name}: no block ran"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_doc_blocks_run(path, tmp_path, monkeypatch, data_dir):
    _run_file(path, tmp_path, monkeypatch, slow=False)


@pytest.mark.slow
@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_doc_blocks_run_slow(path, tmp_path, monkeypatch, data_dir):
    _run_file(path, tmp_path, monkeypatch, slow=True)


def test_ci_runs_the_readme_setup_commands():
    """The README's set-up commands are what ``.ci/run`` runs, word for word."""
    ci = (ROOT / ".ci" / "run").read_text()
    setup = [code.strip() for _, lang, d, code in blocks(ROOT / "README.md") if d == "setup-command"]
    assert len(setup) == 2, "the README has two set-up commands: the main command and the test command"
    for command in setup:
        assert command in ci, f".ci/run does not run the README's set-up command: {command}"


def test_fence_parser_reads_directives(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("a\n<!-- doctest: slow -->\n```bash\necho 1\n```\n\n```python\nx = 1\n```\n```text\nno\n```\n")
    assert [(lang, d, code) for _, lang, d, code in blocks(doc)] == [
        ("bash", "slow", "echo 1\n"), ("python", None, "x = 1\n"), ("text", None, "no\n")]
    doc.write_text("<!-- doctest: sometimes -->\n```bash\necho 1\n```\n")
    with pytest.raises(AssertionError, match="unknown doctest directive"):
        blocks(doc)
