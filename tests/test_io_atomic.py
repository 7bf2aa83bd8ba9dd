"""seglab.io.atomic: outputs get the permissions of any new file of the user (0o666 less the umask), and
no temporary file survives an exception, KeyboardInterrupt included."""
import os
import stat

import pytest

from seglab.errors import SeglabError
from seglab.io import atomic_path, atomic_write


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda m: os.umask(m)
    os.umask(old)


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_permissions_follow_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    out = atomic_write(tmp_path / "sub" / "a.txt", "hello")
    assert stat.S_IMODE(out.stat().st_mode) == mode
    assert out.read_text() == "hello"
    # the same for a reference file made by open() under the same umask
    ref = tmp_path / "ref.txt"
    ref.write_text("x")
    assert stat.S_IMODE(ref.stat().st_mode) == mode
    with atomic_path(tmp_path / "b.bin") as tmp:
        tmp.write_bytes(b"\x00")
    assert stat.S_IMODE((tmp_path / "b.bin").stat().st_mode) == mode


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_no_temporary_file_survives_an_exception(tmp_path, exc):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    with pytest.raises(type(exc)):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise exc
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    assert target.read_bytes() == b"old"  # the previous file is untouched


def test_an_input_is_never_overwritten(tmp_path):
    src = tmp_path / "in.png"
    src.write_bytes(b"input")
    with pytest.raises(SeglabError, match="refusing to overwrite input file"):
        atomic_write(tmp_path / "." / "in.png", b"output", protect=[src])
    assert src.read_bytes() == b"input" and sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]
