"""SamPredictor: MobileSAM with the real weights against the official MobileSAM code on real images;
prompt validation; the memory and disk caches of image embeddings; the banded mask upsampling."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from seglab.errors import ParameterError
from seglab.predictors.sam import SamPredictor, upsample_to_mask
from seglab.structures import Prompts

from _sam_reference import bsds_image, official, randomize_, real_weights, tiny_sam


@pytest.fixture(scope="module")
def mobile_pair(data_dir):
    """Our MobileSAM and the official one on the same weights, each with the embedding of the same image."""
    path = real_weights()
    ms = official("mobile_sam")
    theirs = ms.sam_model_registry["vit_t"]()
    theirs.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    ref = ms.SamPredictor(theirs.eval())
    image = bsds_image(data_dir, 0)
    ref.set_image(image)
    mine = SamPredictor.from_pretrained("mobile_sam", checkpoint=path).set_image(image)
    return ref, mine


def test_mobile_sam_embedding_equals_official(mobile_pair):
    ref, mine = mobile_pair
    torch.testing.assert_close(mine.embedding, ref.features, rtol=1e-4, atol=1e-4)


PROMPTS = {
    "click": dict(points=[[200.0, 150.0]], labels=[1]),
    "two_clicks": dict(points=[[200.0, 150.0], [300.0, 200.0]], labels=[1, 0]),
    "box": dict(box=[50.0, 60.0, 300.0, 250.0]),
    "box_click": dict(points=[[120.0, 200.0]], labels=[0], box=[50.0, 60.0, 300.0, 250.0]),
}


@pytest.mark.parametrize("name", sorted(PROMPTS))
@pytest.mark.parametrize("multimask", [True, False])
def test_mobile_sam_masks_equal_official(mobile_pair, name, multimask):
    ref, mine = mobile_pair
    p = PROMPTS[name]
    pts = None if "points" not in p else np.array(p["points"])
    lab = None if "labels" not in p else np.array(p["labels"])
    box = None if "box" not in p else np.array(p["box"])
    logits, iou_ref, low_ref = ref.predict(point_coords=pts, point_labels=lab, box=box, multimask_output=multimask,
                                           return_logits=True)
    masks, iou, low = mine.predict(points=pts, labels=lab, box=box, multimask=multimask)
    np.testing.assert_allclose(iou, iou_ref, atol=1e-4)
    np.testing.assert_allclose(low, low_ref, atol=1e-3)
    decided = np.abs(logits) > 1e-3
    assert np.array_equal(masks[decided], logits[decided] > 0)
    assert (masks != (logits > 0)).mean() < 1e-5
    # feeding the best low-res logits back as a mask prompt, as in interactive use
    best = int(np.argmax(iou))
    logits2, iou2_ref, _ = ref.predict(point_coords=pts, point_labels=lab, box=box, mask_input=low_ref[best][None],
                                       multimask_output=False, return_logits=True)
    masks2, iou2, _ = mine.predict(points=pts, labels=lab, box=box, mask_input=low[best][None], multimask=False)
    np.testing.assert_allclose(iou2, iou2_ref, atol=1e-4)
    assert (masks2 != (logits2 > 0)).mean() < 1e-5


def test_prompts_object_gives_the_same_answer(mobile_pair):
    _, mine = mobile_pair
    a = mine.predict(points=[[200, 150]], labels=[1], box=[50, 60, 300, 250])
    b = mine.predict(prompts=Prompts(points=[[200, 150]], point_labels=[1], box=[50, 60, 300, 250]))
    assert np.array_equal(a.masks, b.masks) and np.array_equal(a.iou, b.iou)


# -- validation, caches (small random-weight model: fast) ----------------------------------------------

@pytest.fixture
def tiny_predictor():
    return SamPredictor(randomize_(tiny_sam(), seed=3))


def _image(h=60, w=80, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(points=[[81, 10]], labels=[1]), r"point \(81, 10\) is outside the 80 x 60"),
    (dict(points=[[-1, 10]], labels=[1]), "outside"),
    (dict(box=[50, 10, 20, 40]), "x1 > x0"),
    (dict(box=[10, 10, 20]), "box must be"),
    (dict(points=[[1, 2, 3]], labels=[1]), r"points must be N x 2"),
    (dict(points=[[1, 2], [3, 4]], labels=[1]), "labels must be 2 numbers"),
    (dict(points=[[1, 2]], labels=[3]), "labels must be 1"),
    (dict(points=[["a", 2]], labels=[1]), "points must be numbers"),
    (dict(points=[[np.nan, 2]], labels=[1]), "finite"),
    (dict(mask_input=np.zeros((64, 32))), "mask_input must be 1 x 64 x 64"),
    (dict(), "no point, box, mask"),
])
def test_bad_prompts_raise_one_line_parameter_errors(tiny_predictor, kwargs, pattern):
    tiny_predictor.set_image(_image())
    with pytest.raises(ParameterError, match=pattern) as info:
        tiny_predictor.predict(**kwargs)
    assert "\n" not in str(info.value)


def test_bad_use_raises_parameter_errors(tiny_predictor):
    with pytest.raises(ParameterError, match="set_image"):
        tiny_predictor.predict(points=[[1, 1]], labels=[1])
    for bad, pattern in [(np.zeros((4, 4, 2), np.uint8), "H x W x 1/3/4"), (np.zeros((0, 4, 3), np.uint8), "H x W"),
                         (np.full((4, 4), 2.0), r"\[0, 1\]"), (np.zeros((4, 4), np.int32), "dtype")]:
        with pytest.raises(ParameterError, match=pattern):
            tiny_predictor.set_image(bad)
    tiny_predictor.set_image(_image())
    with pytest.raises(ParameterError, match="not both"):
        tiny_predictor.predict(points=[[1, 1]], prompts=Prompts(box=[0, 0, 5, 5]))
    with pytest.raises(ParameterError, match="scribble map is empty"):
        tiny_predictor.predict(prompts=Prompts(scribbles=np.zeros((60, 80), np.uint8)))
    with pytest.raises(ParameterError, match="scribbles are"):
        tiny_predictor.predict(prompts=Prompts(scribbles=np.ones((6, 8), np.uint8)))
    with pytest.raises(ParameterError, match="SAM model"):
        SamPredictor(torch.nn.Linear(2, 2))


def test_outputs_have_the_image_size_and_feed_back(tiny_predictor):
    for h, w in [(1, 1), (60, 80), (90, 17)]:
        tiny_predictor.set_image(_image(h, w))
        masks, iou, low = tiny_predictor.predict(points=[[w / 2, h / 2]], labels=[1])
        assert masks.shape == (3, h, w) and masks.dtype == bool and iou.shape == (3,) and low.shape == (3, 64, 64)
        masks1, iou1, low1 = tiny_predictor.predict(points=[[w / 2, h / 2]], labels=[1], mask_input=low[:1],
                                                    multimask=False)
        assert masks1.shape == (1, h, w) and iou1.shape == (1,) and low1.shape == (1, 64, 64)
    gray = _image()[..., 0]
    a = tiny_predictor.set_image(gray).predict(box=[5, 5, 40, 30]).masks
    b = tiny_predictor.set_image(np.repeat(gray[..., None], 3, axis=2)).predict(box=[5, 5, 40, 30]).masks
    assert np.array_equal(a, b)


def test_embedding_is_cached_in_memory_and_on_disk(tmp_path, monkeypatch):
    model = randomize_(tiny_sam(), seed=4)
    model.weights_id = "tiny-test"
    image = _image(50, 70, seed=5)
    first = SamPredictor(model, cache_dir=tmp_path).set_image(image)
    files = list((tmp_path / "tiny-test").glob("*.pt"))
    assert len(files) == 1 and not list(tmp_path.rglob(".*"))  # written atomically, no temporary left
    want = first.embedding.clone()
    expected = first.predict(points=[[30, 20]], labels=[1])

    calls = []
    original = model.image_encoder.forward
    monkeypatch.setattr(model.image_encoder, "forward", lambda x: calls.append(1) or original(x))
    first.set_image(_image(50, 70, seed=6))  # a new image: encoder runs
    first.set_image(image)  # seen before: from memory
    assert len(calls) == 1 and torch.equal(first.embedding, want)
    later = SamPredictor(model, cache_dir=tmp_path).set_image(image)  # a later session: from disk
    assert len(calls) == 1 and torch.equal(later.embedding, want)
    got = later.predict(points=[[30, 20]], labels=[1])
    assert np.array_equal(got.masks, expected.masks) and np.array_equal(got.iou, expected.iou)
    files[0].write_bytes(b"damaged")  # a damaged entry is recomputed and rewritten
    again = SamPredictor(model, cache_dir=tmp_path).set_image(image)
    assert len(calls) == 2 and torch.allclose(again.embedding, want)
    assert torch.equal(torch.load(files[0], weights_only=True), again.embedding)
    model.weights_id = "random"  # random weights never go to disk
    SamPredictor(model, cache_dir=tmp_path / "r").set_image(image)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("src, dst, band", [((64, 64), (60, 80), 7), ((256, 171), (321, 481), 1024),
                                            ((17, 5), (1, 1), 1), ((10, 12), (99, 3), 13)])
def test_banded_upsampling_equals_interpolate(src, dst, band):
    logits = torch.randn(3, *src, generator=torch.Generator().manual_seed(0))
    want = torch.nn.functional.interpolate(logits[None], dst, mode="bilinear", align_corners=False)[0]
    got = upsample_to_mask(logits, dst, 0.0, rows_per_band=band)
    decided = want.abs() > 1e-5
    assert torch.equal(got[decided], want[decided] > 0)


def test_bfloat16_precision_runs_and_keeps_float32_outputs(tmp_path):
    model = randomize_(tiny_sam(), seed=9, scale=0.05)
    model.weights_id = "tiny-test"
    image = _image(40, 50, seed=8)
    p16 = SamPredictor(model, cache_dir=tmp_path, precision="bfloat16").set_image(image)
    p32 = SamPredictor(model, cache_dir=tmp_path).set_image(image)
    assert {d.name for d in tmp_path.iterdir()} == {"tiny-test", "tiny-test-bfloat16"}  # never mixed up
    assert p16.embedding.dtype == torch.float32
    rel = (p16.embedding - p32.embedding).abs().max() / p32.embedding.abs().max()
    assert 0 < rel < 0.05  # bfloat16 rounding (8 bits of mantissa), not another computation
    masks, iou, low = p16.predict(points=[[20, 20]], labels=[1])
    assert masks.dtype == bool and iou.dtype == np.float32 and low.dtype == np.float32
    with pytest.raises(ParameterError, match="precision"):
        SamPredictor(model, precision="float16")
