"""SAM / MobileSAM networks: state-dict layout of the official checkpoints, and equal outputs to the
official implementation (Meta's ``segment-anything`` package) on shared random weights."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from seglab.errors import InputFileError, ParameterError
from seglab.models.sam import build_sam
from seglab.models.sam.build import load_weights, read_state_dict
from seglab.models.sam.image_encoder import ImageEncoderViT
from seglab.predictors.sam import SamPredictor

from _sam_reference import bsds_image, official, randomize_, real_weights, tiny_official_sam, tiny_sam


def _layout(model) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", ["sam_vit_b", "sam_vit_l", "sam_vit_h"])
def test_vit_layout_equals_official(name):
    sa = official("segment_anything")
    with torch.device("meta"):  # shapes only: ViT-H needs no 2.5 GB here
        ours = build_sam(name)
        theirs = sa.sam_model_registry[name.removeprefix("sam_")]()
    assert _layout(ours) == _layout(theirs)


def test_vit_b_layout_counts():
    """Independent of the reference package: ViT-B has 12 blocks, 4 global (64 x 64 relative positions)."""
    with torch.device("meta"):
        model = build_sam("sam_vit_b")
    lay = _layout(model)
    assert lay["image_encoder.pos_embed"] == (1, 64, 64, 768)
    assert lay["image_encoder.blocks.2.attn.rel_pos_h"] == (127, 64)  # global block
    assert lay["image_encoder.blocks.0.attn.rel_pos_h"] == (27, 64)  # 14 x 14 window
    assert lay["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"] == (2, 128)
    assert lay["mask_decoder.mask_tokens.weight"] == (4, 256)
    assert sum(p.numel() for p in model.parameters()) == 93_735_472  # SAM ViT-B's published parameter count


def test_mobile_sam_layout_equals_official():
    ms = official("mobile_sam")
    ours = build_sam("mobile_sam")
    theirs = ms.sam_model_registry["vit_t"]()
    assert _layout(ours) == _layout(theirs)


def test_mobile_sam_checkpoint_loads_strictly():
    path = real_weights()
    model = build_sam("mobile_sam", path)
    state = read_state_dict(path)
    assert set(state) == set(model.state_dict())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert model.weights_id.startswith("mobile_sam-6dbb90523a35")


def test_bad_checkpoints_are_one_line_input_file_errors(tmp_path):
    small = tiny_sam()
    good = tmp_path / "tiny.pt"
    torch.save(small.state_dict(), good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for path, pattern in [(good, "not a mobile_sam checkpoint"), (truncated, "not a readable checkpoint"),
                          (tmp_path / "missing.pt", "no such checkpoint")]:
        with pytest.raises(InputFileError, match=pattern) as info:
            build_sam("mobile_sam", path)
        assert "\n" not in str(info.value) and str(path) in str(info.value)
    # right keys, wrong shapes (a ViT-B file given to ViT-L): named with the first misfit
    state = {k: torch.zeros(v) for k, v in _layout(small).items()}
    state["mask_decoder.iou_token.weight"] = torch.zeros(1, 8)
    with pytest.raises(InputFileError, match="iou_token"):
        load_weights(tiny_sam(), state, source="x.pt")
    with pytest.raises(ParameterError, match="unknown SAM model"):
        build_sam("sam_vit_x")


# -- equivalence on a small configuration, random weights ---------------------------------------------

@pytest.fixture(scope="module")
def tiny_pair(data_dir):
    sa = official("segment_anything")
    ours = randomize_(tiny_sam(), seed=1)
    theirs = tiny_official_sam()
    theirs.load_state_dict(ours.state_dict(), strict=True)  # same names and shapes, or this raises
    image = bsds_image(data_dir, 3)
    ref = sa.SamPredictor(theirs)
    ref.set_image(image)
    mine = SamPredictor(ours).set_image(image)
    return ref, mine


def test_tiny_vit_sam_embedding_equals_official(tiny_pair):
    ref, mine = tiny_pair
    assert ref.input_size == mine.input_size and ref.original_size == mine.original_size
    torch.testing.assert_close(mine.embedding, ref.features, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("prompt", ["two_points", "box", "box_and_point", "mask_feedback"])
@pytest.mark.parametrize("multimask", [True, False])
def test_tiny_vit_sam_masks_equal_official(tiny_pair, prompt, multimask):
    ref, mine = tiny_pair
    h, w = mine.original_size
    pts, lab, box, mask = np.array([[w * 0.3, h * 0.4], [w * 0.7, h * 0.6]]), np.array([1, 0]), None, None
    if prompt in ("box", "box_and_point"):
        box = np.array([w * 0.1, h * 0.2, w * 0.8, h * 0.9])
    if prompt == "box":
        pts = lab = None
    if prompt == "mask_feedback":
        _, _, low = ref.predict(point_coords=pts, point_labels=lab, multimask_output=False)
        mask = low
    logits, iou_ref, low_ref = ref.predict(point_coords=pts, point_labels=lab, box=box, mask_input=mask,
                                           multimask_output=multimask, return_logits=True)
    masks, iou, low = mine.predict(points=pts, labels=lab, box=box, mask_input=mask, multimask=multimask)
    assert masks.shape == logits.shape == ((3 if multimask else 1), h, w) and masks.dtype == bool
    np.testing.assert_allclose(iou, iou_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(low, low_ref, rtol=1e-3, atol=1e-3 * np.abs(low_ref).max())
    decided = np.abs(logits) > 1e-3 * np.abs(logits).max()  # pixels not on the 0-level set within rounding
    assert np.array_equal(masks[decided], logits[decided] > 0)
    assert 0 < masks.sum() < masks.size  # a real mask, not all / nothing


def test_windowed_attention_with_padding_matches_official():
    """A 14 x 14 token grid with 5 x 5 windows pads to 15 x 15: same result as the official blocks."""
    sa = official("segment_anything")
    from segment_anything.modeling.image_encoder import Block as BlockRef

    ours = randomize_(ImageEncoderViT(img_size=224, embed_dim=32, depth=2, num_heads=2, window_size=5,
                                      global_attn_indexes=(1,), out_chans=16), seed=2).blocks[0]
    theirs = BlockRef(32, 2, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), use_rel_pos=True, window_size=5,
                      input_size=(14, 14))
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 14, 14, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
