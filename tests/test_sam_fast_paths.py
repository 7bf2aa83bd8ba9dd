"""The inference-only fast paths of SAM / MobileSAM give the results of the plain computation they replace:
the decoder's cross-attentions projected on the few-token side, the unshuffled upscaling, the cached dense
positional encoding, masks resized straight from 256 x 256, TinyViT's banded stages, fused attention and
linear / convolution kernels with their GELU, bias and residual inside."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seglab.models.sam import tiny_vit
from seglab.models.sam.prompt_encoder import PromptEncoder
from seglab.models.sam.transformer import Attention
from seglab.models.sam.transforms import (bilinear_matrix, image_resize_matrix, matrix_taps, postprocess_masks,
                                         resized_shape)
from seglab.predictors.sam import SamPredictor, upsample_to_mask

from _sam_reference import randomize_, tiny_sam


def _both(fn):
    """``fn()`` with autograd on (the plain path) and off (the fast path)."""
    with torch.enable_grad():
        plain = fn()
    with torch.no_grad():
        fast = fn()
    return plain.detach(), fast


@pytest.mark.parametrize("batch, shared", [(1, False), (3, False), (3, True)])
def test_cross_attention_on_the_few_tokens_side_equals_sdpa(batch, shared):
    g = torch.Generator().manual_seed(0)
    attn = randomize_(Attention(256, 8, downsample_rate=2), seed=3)
    tokens = torch.randn(batch, 7, 256, generator=g)
    image = torch.randn(1 if shared else batch, 300, 256, generator=g)
    image = image.expand(batch, -1, -1) if shared else image
    for q, k, v in [(tokens, image, image), (image, tokens, tokens)]:  # token-to-image, image-to-token
        plain, fast = _both(lambda: attn(q, k, v))
        torch.testing.assert_close(fast, plain, rtol=0, atol=1e-5 * plain.abs().max().item())  # float rounding
    # self-attention of the tokens, and more tokens than the few-token form pays for: the plain path
    many = torch.randn(batch, 20, 256, generator=g)
    for q, k in [(tokens, tokens), (many, image)]:
        plain, fast = _both(lambda: attn(q, k, k))
        assert torch.equal(plain, fast)


def test_unshuffled_upscaling_equals_upscale_then_masks():
    model = randomize_(tiny_sam(), seed=5)
    dec = model.mask_decoder
    c = dec.transformer_dim
    g = torch.Generator().manual_seed(1)
    src = torch.randn(2, 6, 5, c, generator=g)
    hyper = torch.randn(2, 4, c // 8, generator=g)
    up = dec.upscale(src)  # B x 4h x 4w x C/8
    want = torch.einsum("bhwc,bmc->bmhw", up, hyper)
    torch.testing.assert_close(dec._masks_unshuffled(src, hyper), want, rtol=1e-5, atol=1e-5)


def test_decoder_fast_path_equals_plain_path():
    model = randomize_(tiny_sam(), seed=6)
    g = torch.Generator().manual_seed(2)
    emb = torch.randn(1, 32, 16, 16, generator=g)
    pts = (torch.rand(4, 2, 2, generator=g) * 256, torch.tensor([[1, 0]] * 4))
    for multimask in (True, False):
        with torch.enable_grad():
            low_p, iou_p = (t.detach() for t in model.decode(emb, pts, None, None, multimask))
        with torch.no_grad():
            low_f, iou_f = model.decode(emb, pts, None, None, multimask)
        torch.testing.assert_close(low_f, low_p, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(iou_f, iou_p, rtol=1e-4, atol=1e-4)


def test_dense_positional_encoding_is_cached_and_follows_the_matrix():
    pe = PromptEncoder(embed_dim=32, image_embedding_size=(8, 8), input_image_size=(128, 128))
    first = pe.get_dense_pe()
    assert first.shape == (1, 32, 8, 8) and pe.get_dense_pe() is first  # kept
    assert torch.equal(first, pe.pe_layer((8, 8))[None])  # equals the recomputed encoding
    new = torch.randn(2, 16, generator=torch.Generator().manual_seed(0))
    pe.load_state_dict({**pe.state_dict(), "pe_layer.positional_encoding_gaussian_matrix": new})  # in place
    again = pe.get_dense_pe()
    assert again is not first and torch.equal(again, pe.pe_layer((8, 8))[None])
    pe.image_embedding_size = (4, 6)
    assert pe.get_dense_pe().shape == (1, 32, 4, 6)


@pytest.mark.parametrize("n_in, n_out", [(256, 1024), (683, 321), (5, 5), (7, 1), (3, 10)])
def test_bilinear_matrix_equals_interpolate(n_in, n_out):
    x = torch.randn(2, n_in, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    want = F.interpolate(x[None, :, :, None].expand(1, 2, n_in, 1), (n_out, 1), mode="bilinear",
                         align_corners=False)[0, :, :, 0]
    torch.testing.assert_close(x @ bilinear_matrix(n_in, n_out).T, want)
    idx, w = matrix_taps(image_resize_matrix(n_in, max(1, n_in // 2), n_out, 2 * n_in))
    assert idx.shape == w.shape and idx.shape[1] <= 4 and torch.allclose(w.sum(1), torch.ones(n_out))


@pytest.mark.parametrize("original", [(321, 481), (481, 321), (40, 50), (1200, 90), (1, 1)])
def test_masks_from_logits_equal_two_interpolations(original):
    model = tiny_sam()
    p = SamPredictor(model)
    p.original_size = original
    p.input_size = resized_shape(*original, model.img_size)
    low = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    want = postprocess_masks(low, p.input_size, original, model.img_size)  # the plain two resizes
    got = p.masks_from_logits(low)
    assert got.shape == (2, 3, *original) and got.dtype == torch.bool
    decided = want.abs() > 1e-4  # pixels not within float rounding of the threshold
    assert torch.equal(got[decided], want[decided] > 0)
    # also the banded gather the predictor used before
    up = F.interpolate(low, (model.img_size,) * 2, mode="bilinear", align_corners=False)
    up = up[..., :p.input_size[0], :p.input_size[1]].reshape(6, *p.input_size)
    assert torch.equal(upsample_to_mask(up, original)[decided.reshape(6, *original)], got.reshape(6, *original)[
        decided.reshape(6, *original)])


@pytest.fixture
def small_bands(monkeypatch):
    monkeypatch.setattr(tiny_vit, "_BAND_FLOATS", 3000)  # several bands even on small maps


def test_tinyvit_banded_stages_equal_whole_maps(small_bands):
    torch.manual_seed(0)
    enc = randomize_(tiny_vit.TinyViT(img_size=128, embed_dims=(16, 32, 40, 48), depths=(2, 1, 1, 1),
                                      num_heads=(1, 2, 2, 3), window_sizes=(3, 3, 10, 3)), seed=4, scale=0.1).eval()
    x = torch.randn(1, 3, 128, 128)
    plain, fast = _both(lambda: enc(x))
    assert fast.shape == (1, 256, 8, 8)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    for h in (7, 9, 16):  # odd sizes: stride-2 merging reads rows 2r - 1 .. 2r + 1
        merge = randomize_(tiny_vit.PatchMerging((h, h + 2), 8, 12), seed=h).eval()
        mb = randomize_(tiny_vit.MBConv(8), seed=h + 1).eval()
        y = torch.randn(2, 8, h, h + 2).contiguous(memory_format=torch.channels_last)
        for module in (merge, mb):
            plain, fast = _both(lambda: module(y))
            torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    mlp = randomize_(tiny_vit.Mlp(8, 32), seed=9)
    t = torch.randn(2, 301, 8)
    plain, fast = _both(lambda: mlp(t))
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("window", [3, 7, 9])  # 9, 49, 81 tokens per tile
def test_tinyvit_fused_attention_equals_explicit(window):
    attn = randomize_(tiny_vit.Attention(20, 2, window), seed=2)
    x = torch.randn(3, window * window, 20)
    res = torch.randn(3, window * window, 20)
    plain, fast = _both(lambda: attn(x))  # explicit product + softmax with autograd, fused kernels without
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(attn(x, add=res), fast + res, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_linear_and_convolution_equal_the_separate_steps(dtype):
    from seglab.models.sam import fused

    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(2, 37, 24, generator=g), torch.randn(40, 24, generator=g) / 5, torch.randn(40, generator=g)
    add = torch.randn(2, 37, 40, generator=g)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=2e-2, atol=5e-2)
    for gelu in (False, True):
        for extra in (None, add):
            want = F.linear(x, w, b) + (0 if extra is None else extra)
            want = F.gelu(want) if gelu else want
            with torch.no_grad():
                got = fused.linear(x.to(dtype), w, b, gelu=gelu, add=None if extra is None else extra.to(dtype))
            assert got.dtype == dtype and got.shape == want.shape
            torch.testing.assert_close(got.float(), want, **tol)
    img = torch.randn(1, 6, 11, 13, generator=g).contiguous(memory_format=torch.channels_last)
    for wshape, stride, groups in [((6, 1, 3, 3), 1, 6), ((6, 1, 3, 3), 2, 6), ((8, 6, 3, 3), 2, 1)]:
        cw, cb = torch.randn(*wshape, generator=g) / 3, torch.randn(wshape[0], generator=g)
        for gelu in (False, True):
            want = F.conv2d(img, cw, cb, stride, 1, 1, groups)
            want = F.gelu(want) if gelu else want
            with torch.no_grad():
                got = fused.conv2d(img.to(dtype), cw, cb, (stride, stride), (1, 1), groups, gelu=gelu)
            torch.testing.assert_close(got.float(), want, **tol)
    # with autograd: the plain operations, gradients flow
    wg = w.clone().requires_grad_()
    fused.linear(x, wg, b, gelu=True, add=add).sum().backward()
    assert wg.grad is not None and wg.grad.abs().sum() > 0


@pytest.mark.parametrize("dim, heads", [(32, 2), (256, 8)])  # image-to-token output folded into the values or not
def test_image_state_equals_recomputing_the_first_block(dim, heads):
    from seglab.models.sam.transformer import TwoWayTransformer

    g = torch.Generator().manual_seed(3)
    tr = randomize_(TwoWayTransformer(depth=2, embedding_dim=dim, num_heads=heads, mlp_dim=64), seed=7, scale=0.05)
    image, pe = torch.randn(1, dim, 6, 7, generator=g), torch.randn(1, dim, 6, 7, generator=g)
    tokens = torch.randn(3, 7, dim, generator=g)
    with torch.no_grad():
        state = tr.image_state(image, pe)
        got = tr(None, pe, tokens, state)
    want = _both(lambda: tr(image.expand(3, -1, -1, -1), pe, tokens)[0])[0], \
        _both(lambda: tr(image.expand(3, -1, -1, -1), pe, tokens)[1])[0]
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5 * b.abs().max().item())


def test_predictor_keeps_the_decoder_state_per_image_and_weights():
    model = randomize_(tiny_sam(), seed=8, scale=0.05)
    image = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    other = np.random.default_rng(1).integers(0, 256, (30, 20, 3), dtype=np.uint8)
    p = SamPredictor(model).set_image(image)
    pts, lab = np.array([[10.0, 12.0], [15.0, 20.0]]), np.array([1, 0])

    def plain(img):
        q = SamPredictor(model).set_image(img)
        q._decoder_state = lambda: None  # no state: the whole decoder per prompt
        return q.predict(points=pts, labels=lab)

    for img in (image, other, image):
        p.set_image(img)
        got, want = p.predict(points=pts, labels=lab), plain(img)
        np.testing.assert_allclose(got.low_res_logits, want.low_res_logits, rtol=0,
                                   atol=1e-5 * np.abs(want.low_res_logits).max())
        np.testing.assert_allclose(got.iou, want.iou, rtol=0, atol=1e-5)
    state = p._state[1]
    assert p._decoder_state() is state  # kept
    with torch.no_grad():  # a fine-tuning step changes the decoder in place: the state is recomputed
        model.mask_decoder.transformer.layers[0].cross_attn_token_to_image.k_proj.weight.mul_(1.5)
    assert not model.state_fits(state) and p._decoder_state() is not state
    got, want = p.predict(points=pts, labels=lab), plain(image)
    np.testing.assert_allclose(got.low_res_logits, want.low_res_logits, rtol=0,
                               atol=1e-5 * np.abs(want.low_res_logits).max())


def _tiny_mobile_sam():
    from seglab.models.sam.mask_decoder import MaskDecoder
    from seglab.models.sam.prompt_encoder import PromptEncoder
    from seglab.models.sam.sam import Sam
    from seglab.models.sam.transformer import TwoWayTransformer

    enc = tiny_vit.TinyViT(img_size=128, embed_dims=(16, 32, 40, 48), depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 3),
                           window_sizes=(3, 3, 5, 3), out_chans=32)
    return randomize_(Sam(enc, PromptEncoder(embed_dim=32, image_embedding_size=(8, 8), input_image_size=(128, 128),
                                             mask_in_chans=16),
                          MaskDecoder(transformer=TwoWayTransformer(depth=2, embedding_dim=32, num_heads=4, mlp_dim=64),
                                      transformer_dim=32, iou_head_hidden_dim=32)), seed=11, scale=0.1).eval()


def test_tinyvit_mixed_path_runs_its_float32_layers_in_float32():
    enc = _tiny_mobile_sam().image_encoder
    seen = {}
    hooks = [layer.register_forward_pre_hook(lambda m, a, i=i: seen.__setitem__(i, a[0].dtype))
             for i, layer in enumerate(enc.layers)]
    hooks.append(enc.neck.register_forward_pre_hook(lambda m, a: seen.__setitem__("neck", a[0].dtype)))
    x = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        exact = enc(x)
        assert all(v == torch.float32 for v in seen.values())
        mixed = enc(x, mixed=True)
    for h in hooks:
        h.remove()
    assert seen == {0: torch.bfloat16, 1: torch.bfloat16, 2: torch.float32, 3: torch.bfloat16, "neck": torch.float32}
    assert mixed.dtype == torch.float32 and mixed.shape == exact.shape
    # bfloat16 keeps 8 significant bits: close, not equal
    assert (mixed - exact).abs().mean() < 0.05 * exact.abs().mean() and not torch.equal(mixed, exact)


def test_predictor_precision_choices(monkeypatch):
    from seglab.errors import ParameterError
    from seglab.predictors import sam as sam_predictor

    small = _tiny_mobile_sam()
    for supported, want in [(True, "mixed"), (False, "float32")]:
        monkeypatch.setattr(sam_predictor, "bf16_supported", lambda: supported)
        assert SamPredictor(small, precision="auto").precision == want
        assert SamPredictor(tiny_sam(), precision="auto").precision == "float32"  # ViT encoder: no mixed path
    with pytest.raises(ParameterError, match="precision 'mixed' is for MobileSAM"):
        SamPredictor(tiny_sam(), precision="mixed")
    with pytest.raises(ParameterError, match="precision"):
        SamPredictor(small, precision="float16")
    image = np.random.default_rng(0).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    p = SamPredictor(small, precision="mixed").set_image(image)
    masks, iou, low = p.predict(points=[[30, 20]], labels=[1])
    assert p.embedding.dtype == torch.float32 and masks.shape == (3, 60, 90) and low.dtype == np.float32


def test_mixed_precision_masks_equal_float32_on_real_weights(data_dir):
    """MobileSAM's real weights on a BSDS500 image, the benchmark's 8 clicks: the best mask of each click
    with precision="mixed" against float32 (docs/results/sam_speed.md measures 3 images)."""
    import sys
    from pathlib import Path

    from seglab.models.sam import build_sam
    from _sam_reference import bsds_image, real_weights

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from sam_speed import _clicks, _iou

    model = build_sam("mobile_sam", real_weights())
    image = bsds_image(data_dir)
    exact, mixed = SamPredictor(model).set_image(image), SamPredictor(model, precision="mixed").set_image(image)
    ious = []
    for pt in _clicks(*image.shape[:2]):
        a, sa, _ = exact.predict(points=pt[None], labels=[1])
        b, sb, _ = mixed.predict(points=pt[None], labels=[1])
        ious.append(_iou(a[int(np.argmax(sa))], b[int(np.argmax(sb))]))
    assert np.mean(ious) >= 0.99 and min(ious) >= 0.95, ious


def test_fused_kernels_follow_cpu_autocast():
    from seglab.models.sam import fused

    g = torch.Generator().manual_seed(1)
    x, w, b = torch.randn(5, 16, generator=g), torch.randn(8, 16, generator=g), torch.randn(8, generator=g)
    img, cw = torch.randn(1, 4, 6, 6, generator=g), torch.randn(4, 1, 3, 3, generator=g)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        want_lin, want_conv = F.linear(x, w, b), F.conv2d(img, cw, None, 1, 1, 1, 4)
        got_lin, got_conv = fused.linear(x, w, b), fused.conv2d(img, cw, None, (1, 1), (1, 1), 4)
    assert got_lin.dtype == want_lin.dtype == torch.bfloat16 and got_conv.dtype == want_conv.dtype == torch.bfloat16
    torch.testing.assert_close(got_lin, want_lin, rtol=2e-2, atol=5e-2)
    torch.testing.assert_close(got_conv, want_conv, rtol=2e-2, atol=5e-2)


def test_tinyvit_without_onednn_kernels_gives_the_same_embedding(monkeypatch):
    from seglab.models.sam import fused

    enc = _tiny_mobile_sam().image_encoder
    x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        with_kernels = enc(x)
        monkeypatch.setattr(fused, "_MKLDNN", False)  # a build without oneDNN: F.linear / F.conv2d + GELU
        without = enc(x)
    torch.testing.assert_close(without, with_kernels, rtol=1e-5, atol=1e-5)
