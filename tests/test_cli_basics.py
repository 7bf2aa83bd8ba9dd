import subprocess
import sys

import numpy as np
from PIL import Image

from seglab.cli.main import main


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert "seglab" in capsys.readouterr().out


def test_segment_writes_labels_and_rejects_bad_input(tmp_path, capsys):
    img = np.zeros((16, 16), np.uint8)
    img[4:12, 4:12] = 200
    Image.fromarray(img).save(tmp_path / "a.png")
    assert main(["segment", str(tmp_path / "a.png"), "--method", "otsu", "--out", str(tmp_path / "o"),
                 "--overlay"]) == 0
    lab = np.asarray(Image.open(tmp_path / "o" / "a.png"))
    assert lab[8, 8] == 1 and lab[0, 0] == 0
    assert (tmp_path / "o" / "a_overlay.png").exists()
    assert main(["segment", str(tmp_path / "nope.png"), "-m", "otsu", "-o", str(tmp_path)]) == 2
    assert "nope.png" in capsys.readouterr().err
    assert main(["segment", str(tmp_path / "a.png"), "-m", "no_such", "-o", str(tmp_path)]) == 2
    assert main(["segment", str(tmp_path / "a.png"), "-m", "otsu", "--set", "nbins=1", "-o", str(tmp_path)]) == 2
    assert main(["segment", str(tmp_path / "a.png"), "-m", "otsu", "--set", "bogus=1", "-o", str(tmp_path)]) == 2


def test_cli_process_exit_code_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "seglab.cli.main", "segment", str(tmp_path / "x.png"),
                        "-m", "otsu", "-o", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "x.png" in r.stderr
