"""``seglab export``: ONNX files that ONNX Runtime runs with PyTorch's outputs (tolerance 1e-4)."""
import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from seglab.export.onnx import export_onnx  # noqa: E402
from seglab.cli.main import main  # noqa: E402
from seglab.errors import SeglabError  # noqa: E402
from seglab.models import create, save_checkpoint  # noqa: E402
from seglab.models.segformer import build_segformer  # noqa: E402

TINY_VIT = dict(patch_size=16, dim=32, depth=4, num_heads=2)


def run_onnx(path, x: torch.Tensor) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"image": x.numpy()})[0]


def test_cli_export_setr_dynamic_sizes(tmp_path, capsys):
    torch.manual_seed(0)
    model = create("setr", 3, encoder=TINY_VIT, decoder="pup", img_size=64, channels=8)
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    ckpt = save_checkpoint(tmp_path / "setr.pt", model)
    out = tmp_path / "setr.onnx"
    assert main(["export", str(ckpt), "--onnx", str(out), "--height", "48", "--width", "64"]) == 0
    printed = capsys.readouterr().out
    assert "dynamic" in printed and "max abs diff" in printed
    model.eval()
    for shape in [(1, 3, 48, 64), (2, 3, 70, 33), (1, 3, 16, 16)]:  # sizes other than the example's too
        x = torch.randn(*shape)
        with torch.no_grad():
            ref = model(x).numpy()
        got = run_onnx(out, x)
        assert got.shape == ref.shape == (shape[0], 3, *shape[2:])
        assert np.abs(got - ref).max() <= 1e-4


def test_cli_export_bad_input(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope.pt"), "--onnx", str(tmp_path / "a.onnx")]) == 2
    assert "nope.pt" in capsys.readouterr().err
    torch.save({"weights": torch.zeros(2)}, tmp_path / "junk.pt")  # a torch file, not a seglab checkpoint
    assert main(["export", str(tmp_path / "junk.pt"), "--onnx", str(tmp_path / "a.onnx")]) == 2
    assert main(["export", str(tmp_path / "junk.pt"), "--onnx", str(tmp_path / "a.txt")]) == 2
    err = capsys.readouterr().err
    assert "junk.pt" in err and ".onnx" in err and "Traceback" not in err
    assert not (tmp_path / "a.onnx").exists()


def test_export_segformer_matches_torch(tmp_path):
    torch.manual_seed(0)
    model = build_segformer(4, mit_config=dict(embed_dims=(8, 16, 24, 32), depths=(1, 1, 1, 1),
                                               num_heads=(1, 2, 3, 4)), decoder_dim=16).eval()
    summary = export_onnx(model, tmp_path / "seg.onnx", height=64, width=96)
    assert summary["dynamic"] and all(d <= 1e-4 for d in summary["max_abs_diff"].values())
    x = torch.randn(1, 3, 45, 77)  # padded to 64 x 96 inside the graph, then cropped
    with torch.no_grad():
        ref = model(x).numpy()
    got = run_onnx(tmp_path / "seg.onnx", x)
    assert got.shape == (1, 4, 45, 77) and np.abs(got - ref).max() <= 1e-4


def test_export_falls_back_to_static_for_mirror_padding(tmp_path):
    model = create("unet", 2, variant="valid", depth=1, base_width=4)
    summary = export_onnx(model, tmp_path / "unet.onnx", height=20, width=24)
    assert not summary["dynamic"] and summary["max_abs_diff"]["1x20x24"] <= 1e-4
    with pytest.raises(SeglabError, match="export size"):
        export_onnx(model, tmp_path / "x.onnx", height=0, width=4)
