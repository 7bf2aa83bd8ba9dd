"""SAM through the one prompt API: ``seglab.segment(image, "sam", prompts=...)`` equals the predictor's
answer (tiny random-weight model), scribbles and masks are converted, checkpoints are found or refused
in one line, large images are not copied to float; and one real-weights run of ``seglab segment
--method sam --point ... --box ...``."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
from PIL import Image

import seglab
from seglab.cli.main import main
from seglab.errors import InputFileError, ParameterError
from seglab.predictors.sam import SamPredictor
from seglab.prompting import sam as sam_method
from seglab.prompting.convert import sam_prompts
from seglab.structures import Prompts

from _sam_reference import randomize_, tiny_sam


@pytest.fixture
def tiny(monkeypatch):
    """segment(..., 'sam') on a small random-weight SAM (what predictor_for would build from weights)."""
    predictor = SamPredictor(randomize_(tiny_sam(), seed=3))
    monkeypatch.setattr(sam_method, "predictor_for", lambda model="mobile_sam", checkpoint=None: predictor)
    return predictor


def _image(h=60, w=80, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_sam_models_listed_are_those_with_official_weights():
    from seglab.models.sam.build import CHECKPOINTS, CONFIGS

    assert set(sam_method.MODELS) == set(CHECKPOINTS) and set(sam_method.MODELS) <= set(CONFIGS)


def test_segment_sam_equals_the_predictor(tiny):
    image = _image()
    tiny.set_image(image)
    one = seglab.segment(image, "sam", prompts=Prompts(points=[[30, 20]]))  # one click: best of three
    masks, iou, _ = tiny.predict(points=[[30, 20]], labels=[1], multimask=True)
    assert one.dtype == np.int32 and np.array_equal(one, masks[iou.argmax()])
    p = Prompts(points=[[30, 20], [70, 50]], point_labels=[1, 0], box=[10, 5, 60, 45])
    many = seglab.segment(image, "sam", prompts=p)  # several prompts: the single-mask output
    assert np.array_equal(many, tiny.predict(prompts=p, multimask=False).masks[0])
    scrib = np.zeros((60, 80), np.uint8)
    scrib[30, 10:50], scrib[5, 60:70] = 1, 2
    mask = np.zeros((60, 80), bool)
    mask[20:40, 20:50] = True
    for prompts in (Prompts(scribbles=scrib), Prompts(mask=mask), Prompts(mask=mask, scribbles=scrib)):
        got = seglab.segment(image, "sam", prompts=prompts)
        converted = sam_prompts(prompts.validate((60, 80)))
        assert converted.kinds() <= {"points", "box"}
        assert np.array_equal(got, tiny.predict(prompts=converted, multimask=False).masks[0])
        # the predictor converts the same way
        assert np.array_equal(got, tiny.predict(prompts=prompts, multimask=False).masks[0])


def test_sam_takes_odd_images(tiny):
    for image in (_image(1, 1), _image(60, 80)[..., 0], _image(90, 17).astype(np.float32) / 255,
                  (_image(30, 40).astype(np.uint16) * 257)):
        out = seglab.segment(image, "sam", prompts=Prompts(points=[[0.5, 0.5]]))
        assert out.shape == image.shape[:2] and set(np.unique(out)) <= {0, 1}
    gray = _image()[..., 0]
    assert np.array_equal(seglab.segment(gray, "sam", prompts=Prompts(box=[5, 5, 40, 30])),
                          seglab.segment(np.repeat(gray[..., None], 3, 2), "sam", prompts=Prompts(box=[5, 5, 40, 30])))


def test_large_uint8_image_is_never_copied_to_float(tiny, monkeypatch):
    """SAM resizes to its input size itself: a large uint8 image costs its masks, not float copies."""
    import seglab.io as sio

    monkeypatch.setattr(sio, "to_float_image", lambda *a, **k: pytest.fail("float copy of the image"))
    h, w = 3000, 2000
    image = np.zeros((h, w, 3), np.uint8)
    image[1000:2000, 500:1500] = 200
    tracemalloc.start()
    out = seglab.segment(image, "sam", prompts=Prompts(box=[500, 1000, 1500, 2000]))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out.shape == (h, w)
    # the int32 result (4 B/px) dominates; a float32 RGB copy alone would be 12 B/px
    assert peak < 5.5 * h * w, peak / (h * w)


def test_sam_errors_are_one_line(tiny, tmp_path):
    image = _image()
    cases = [(dict(), "method 'sam' needs prompts"),
             (dict(prompts=Prompts(points=[[81, 10]])), r"point \(81, 10\) is outside the 80 x 60"),
             (dict(prompts=Prompts(mask_input=np.zeros((1, 5, 5)))), "mask_input must be 1 x 64 x 64"),
             (dict(prompts=Prompts(points=[[1, 1]]), model="sam_vit_x"), "parameter 'model' must be one of")]
    for kwargs, pattern in cases:
        with pytest.raises(ParameterError, match=pattern) as info:
            seglab.segment(image, "sam", **kwargs)
        assert "\n" not in str(info.value)
    with pytest.raises(ParameterError, match="expected 1, 3 or 4 channels"):
        seglab.segment(np.zeros((5, 5, 2), np.uint8), "sam", prompts=Prompts(points=[[1, 1]]))


def test_checkpoints_missing_foreign_or_truncated(tmp_path, monkeypatch):
    image = _image()
    p = Prompts(points=[[10, 10]])
    monkeypatch.setenv("SEGLAB_WEIGHTS", str(tmp_path / "none"))
    with pytest.raises(InputFileError, match="mobile_sam.pt: no such file; download .* or set SEGLAB_WEIGHTS"):
        seglab.segment(image, "sam", prompts=p)
    foreign = tmp_path / "tiny.pt"
    torch.save(tiny_sam().state_dict(), foreign)
    with pytest.raises(InputFileError, match="tiny.pt: not a mobile_sam checkpoint"):
        seglab.segment(image, "sam", prompts=p, checkpoint=str(foreign))
    truncated = tmp_path / "cut.pt"
    truncated.write_bytes(foreign.read_bytes()[:4000])
    with pytest.raises(InputFileError, match="cut.pt: not a readable checkpoint"):
        seglab.segment(image, "sam", prompts=p, checkpoint=str(truncated))
    with pytest.raises(InputFileError, match="nothere.pt: no such checkpoint file"):
        seglab.segment(image, "sam", prompts=p, checkpoint=str(tmp_path / "nothere.pt"))


def test_cli_sam_with_real_weights(weights_dir, data_dir, tmp_path, capsys):
    """``seglab segment IMG --method sam --point ... --box ...`` with the real mobile_sam.pt, found in
    SEGLAB_WEIGHTS and given with --set checkpoint=: the label PNG is the predictor's mask."""
    src = sorted((data_dir / "bsds500" / "images" / "test").glob("100007.jpg"))[0]
    image = np.asarray(Image.open(src).convert("RGB"))
    args = ["segment", str(src), "--method", "sam", "--point", "170,175,1", "--point", "120,205,0",
            "--box", "95,130,255,222"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--set", f"checkpoint={weights_dir / 'mobile_sam.pt'}", "--out", str(tmp_path / "b")]) == 0
    got = np.asarray(Image.open(tmp_path / "a" / "100007.png"))
    assert np.array_equal(got, np.asarray(Image.open(tmp_path / "b" / "100007.png")))
    predictor = SamPredictor.from_pretrained("mobile_sam").set_image(image)
    want = predictor.predict(points=[[170, 175], [120, 205]], labels=[1, 0], box=[95, 130, 255, 222],
                             multimask=False).masks[0]
    assert got.shape == image.shape[:2] and np.array_equal(got, want)
    assert 3000 < got.sum() < 0.5 * got.size  # the bear, not nothing, not everything
    bad = tmp_path / "bad.pt"
    bad.write_bytes((weights_dir / "mobile_sam.pt").read_bytes()[:100000])
    assert main(args + ["--set", f"checkpoint={bad}", "--out", str(tmp_path / "c")]) == 2
    assert "bad.pt: not a readable checkpoint" in capsys.readouterr().err
