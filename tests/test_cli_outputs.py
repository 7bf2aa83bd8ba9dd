"""Nothing overwritten: no output of a command may be one of its inputs, and no two outputs of one run may
share a path (seglab.io.outputs.check_outputs, used by every command that writes)."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from seglab.cli.main import main
from seglab.errors import OutputError, SeglabError
from seglab.io import write_labels
from seglab.io.outputs import check_outputs


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return " ".join(err.split())


def _image(path, value=200):
    img = np.zeros((16, 16), np.uint8)
    img[4:12, 4:12] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def test_check_outputs_refuses_inputs_links_duplicates_and_folders(tmp_path):
    a = _image(tmp_path / "in" / "a.png")
    check_outputs([tmp_path / "out" / "a.png", tmp_path / "out" / "b.png"], [a])  # distinct: fine
    with pytest.raises(OutputError, match="would overwrite the input"):
        check_outputs([tmp_path / "in" / "." / "a.png"], [a])            # the same file, spelled otherwise
    os.symlink(a, tmp_path / "link.png")
    with pytest.raises(OutputError, match="would overwrite the input"):
        check_outputs([tmp_path / "link.png"], [a])                        # a symbolic link to the input
    os.link(a, tmp_path / "hard.png")
    with pytest.raises(OutputError, match="would overwrite the input"):
        check_outputs([tmp_path / "hard.png"], [a])                        # a hard link of the input
    with pytest.raises(OutputError, match="would both be written to") as e:
        check_outputs([(tmp_path / "o" / "x.png", "in1/x.png"), (tmp_path / "o" / "y.png", "in1/y.png"),
                       (tmp_path / "o" / ".." / "o" / "x.png", "in2/x.png")])
    assert "in1/x.png and in2/x.png" in str(e.value)
    with pytest.raises(OutputError, match="share one file"):
        check_outputs([tmp_path / "j.json", tmp_path / "j.json"])
    with pytest.raises(OutputError, match="existing folder"):
        check_outputs([tmp_path / "in"])
    assert issubclass(OutputError, SeglabError)


def test_segment_refuses_same_stem_in_two_folders(tmp_path, capsys):
    a1, a2 = _image(tmp_path / "x" / "a.png"), _image(tmp_path / "y" / "a.png", 90)
    out = tmp_path / "out"
    assert main(["segment", str(a1), str(a2), "-m", "otsu", "-o", str(out)]) == 2
    err = _err(capsys)
    assert str(out / "a.png") in err and str(a1) in err and str(a2) in err
    assert not out.exists()  # refused before anything ran


def test_segment_refuses_overlay_name_of_another_input(tmp_path, capsys):
    a, b = _image(tmp_path / "a.png"), _image(tmp_path / "a_overlay.png", 90)
    out = tmp_path / "out"
    assert main(["segment", str(a), str(b), "-m", "otsu", "-o", str(out)]) == 0  # no overlays: no clash
    assert main(["segment", str(a), str(b), "-m", "otsu", "-o", str(out), "--overlay"]) == 2
    assert str(out / "a_overlay.png") in _err(capsys)


def test_segment_refuses_output_onto_its_input(tmp_path, capsys):
    a = _image(tmp_path / "a.png")
    before = a.read_bytes()
    assert main(["segment", str(a), "-m", "otsu", "-o", str(tmp_path)]) == 2
    err = _err(capsys)
    assert "would overwrite the input" in err and str(a) in err
    assert a.read_bytes() == before


def test_predict_refuses_clashes_before_loading_the_model(tmp_path, capsys):
    """The checkpoint does not even exist: the clash is found first."""
    a1, a2 = _image(tmp_path / "x" / "a.png"), _image(tmp_path / "y" / "a.jpg", 90)
    assert main(["predict", str(tmp_path / "m.pt"), str(a1), str(a2), "-o", str(tmp_path / "o")]) == 2
    assert str(a1) in _err(capsys)
    assert main(["predict", str(tmp_path / "m.pt"), str(tmp_path / "x"), "-o", str(tmp_path / "x")]) == 2
    assert "would overwrite the input" in _err(capsys)


def test_score_json_onto_an_input_is_refused(tmp_path, capsys):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    lab = np.zeros((8, 8), np.int32)
    lab[2:5] = 1
    write_labels(pred / "a.png", lab)
    write_labels(gt / "a.png", lab)
    before = (gt / "a.png").read_bytes()
    base = ["score", "--pred", str(pred), "--gt", str(gt), "-n", "2"]
    assert main(base + ["--json", str(gt / "a.png")]) == 2
    assert "would overwrite the input" in _err(capsys)
    assert (gt / "a.png").read_bytes() == before
    names = tmp_path / "names.txt"
    names.write_text("bg\nfg\n")
    assert main(base + ["--class-names", str(names), "--json", str(names)]) == 2
    assert names.read_text() == "bg\nfg\n"
    capsys.readouterr()
    assert main(base + ["--json", str(tmp_path / "res.json")]) == 0  # a new name is fine
    assert json.loads((tmp_path / "res.json").read_text())["semantic"]["images"] == 1


def test_bsds_eval_json_onto_an_input_is_refused(data_dir, tmp_path, capsys):
    bench = data_dir / "bsds500" / "bench"
    pred = tmp_path / "ucm2"
    pred.mkdir()
    for f in sorted((bench / "ucm2").iterdir())[:1]:
        (pred / f.name).write_bytes(f.read_bytes())
    target = sorted(pred.iterdir())[0]
    before = target.read_bytes()
    assert main(["bsds", "eval", "--pred", str(pred), "--gt", str(bench / "groundTruth"), "--nthresh", "3",
                 "--workers", "1", "--json", str(target)]) == 2
    assert "would overwrite the input" in _err(capsys)
    assert target.read_bytes() == before


def test_evaluate_json_onto_its_own_report_is_refused(tmp_path, capsys):
    from seglab.data.synthetic import render

    root = tmp_path / "ds"
    (root / "test/images").mkdir(parents=True)
    (root / "test/masks").mkdir(parents=True)
    for i in range(2):
        img, t = render(i, 32)
        Image.fromarray(img).save(root / f"test/images/{i}.png")
        Image.fromarray(t.astype(np.uint8)).save(root / f"test/masks/{i}.png")
    (root / "classes.txt").write_text("background\nrectangle\ndisc\n")
    out = tmp_path / "ev"
    assert main(["evaluate", str(tmp_path / "m.pt"), "--data", str(root), "-f", "folder", "-o", str(out),
                 "--json", str(out / "report.md")]) == 2
    err = _err(capsys)
    assert "--json" in err and "would both be written to" in err and str(out / "report.md") in err
    assert main(["evaluate", str(tmp_path / "m.pt"), "--data", str(root), "-f", "folder", "-o", str(out),
                 "--json", str(root / "test/masks/0.png")]) == 2
    assert "would overwrite the input" in _err(capsys)


def test_export_onto_the_checkpoint_is_refused(tmp_path, capsys):
    ck = tmp_path / "model.onnx"
    ck.write_bytes(b"not really")
    assert main(["export", str(ck), "--onnx", str(ck)]) == 2
    assert "would overwrite the input" in _err(capsys)
    assert ck.read_bytes() == b"not really"


def test_data_check_json_onto_a_data_file_is_refused(tmp_path, capsys):
    root = tmp_path / "ds"
    img = _image(root / "test" / "images" / "0.png")
    mask = root / "test" / "masks" / "0.png"
    mask.parent.mkdir(parents=True)
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(mask)
    (root / "classes.txt").write_text("background\nthing\n")
    before = mask.read_bytes()
    assert main(["data", "check", str(root), "-f", "folder", "--json", str(mask)]) == 2
    assert "would overwrite the input" in _err(capsys)
    assert mask.read_bytes() == before and img.exists()


def test_held_interrupts_delivers_a_signal_after_the_block():
    import signal

    from seglab.io.outputs import held_interrupts

    steps = []
    with pytest.raises(KeyboardInterrupt):
        with held_interrupts():
            os.kill(os.getpid(), signal.SIGINT)   # Python's default handler raises KeyboardInterrupt ...
            for _ in range(1000):                 # ... but not while held: the block runs to its end
                pass
            steps.append("block done")
    assert steps == ["block done"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
