"""Fast start: the help, ``methods``, classical ``segment`` and the demo's import load no deep-learning
library (torch alone takes seconds to import); ``import seglab`` gives ``seglab.io`` without torch."""
import subprocess
import sys

HEAVY = ("torch", "lightning", "pytorch_lightning", "transformers", "onnx", "onnxruntime")


def _modules_after(code: str) -> set:
    probe = code + "\nimport sys\nprint(' '.join(sorted(m for m in sys.modules if '.' not in m)))"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return set(r.stdout.split("\n")[-2].split())


def test_methods_and_help_do_not_import_torch():
    mods = _modules_after("from seglab.cli.main import main\n"
                          "assert main(['methods', '--json']) == 0\nassert main(['--help']) == 0")
    assert "seglab" in mods and "typer" in mods
    assert not mods & set(HEAVY), mods & set(HEAVY)


def test_classical_segment_and_demo_import_do_not_import_torch(tmp_path):
    import numpy as np
    from PIL import Image

    img = np.zeros((16, 16), np.uint8)
    img[4:12, 4:12] = 200
    Image.fromarray(img).save(tmp_path / "a.png")
    mods = _modules_after(f"from seglab.cli.main import main\nimport seglab.demo\n"
                          f"assert main(['segment', {str(tmp_path / 'a.png')!r}, '-m', 'otsu', '-o', "
                          f"{str(tmp_path / 'o')!r}]) == 0")
    assert (tmp_path / "o" / "a.png").exists()
    assert not mods & set(HEAVY), mods & set(HEAVY)


def test_import_seglab_gives_io_without_torch():
    mods = _modules_after("import seglab\nassert callable(seglab.io.read_image)\n"
                          "assert seglab.io.write_labels.__module__ == 'seglab.io.labels'")
    assert "torch" not in mods


def test_unknown_attribute_of_seglab_is_an_attribute_error():
    import pytest

    import seglab

    with pytest.raises(AttributeError, match="no_such_thing"):
        seglab.no_such_thing  # noqa: B018
    assert "io" in dir(seglab)
