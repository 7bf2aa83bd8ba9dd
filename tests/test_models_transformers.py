"""SegFormer / SETR and their blocks, against definitions and the papers' sizes."""
import math

import pytest
import torch
import torch.nn.functional as F

from seglab.errors import ParameterError, SeglabError
from seglab.models import create
from seglab.models.blocks.attention import DropPath, MultiHeadSelfAttention, TokenLinear
from seglab.models.blocks.patch_embed import OverlapPatchEmbed, ViTPatchEmbed, resize_pos_embed
from seglab.models.encoders.mit import MIT_CONFIGS, MixTransformer, mit
from seglab.models.encoders.vit import VisionTransformer, vit
from seglab.models.segformer import AllMLPDecoder

TINY_MIT = dict(embed_dims=(8, 16, 24, 32), depths=(1, 1, 1, 1), num_heads=(1, 2, 3, 4))
TINY_VIT = dict(patch_size=16, dim=32, depth=4, num_heads=2)


def naive_attention(attn: MultiHeadSelfAttention, x, hw=None):
    """softmax(Q K^T / sqrt(d)) V per head, written out from the layer's weights."""
    b, n, c = x.shape
    heads, d = attn.num_heads, attn.head_dim
    if attn.sr_ratio > 1:
        q = F.linear(x, attn.q.weight, attn.q.bias)
        grid = x.transpose(1, 2).reshape(b, c, *hw)
        red = F.conv2d(grid, attn.sr.weight, attn.sr.bias, stride=attn.sr_ratio).flatten(2).transpose(1, 2)
        red = F.layer_norm(red, (c,), attn.norm.weight, attn.norm.bias, attn.norm.eps)
        k, v = F.linear(red, attn.kv.weight, attn.kv.bias).split(c, dim=-1)
    else:
        q, k, v = F.linear(x, attn.qkv.weight, attn.qkv.bias).split(c, dim=-1)
    out = []
    for h in range(heads):
        s = slice(h * d, (h + 1) * d)
        w = torch.softmax(q[..., s] @ k[..., s].transpose(1, 2) / math.sqrt(d), dim=-1)
        out.append(w @ v[..., s])
    return F.linear(torch.cat(out, -1), attn.proj.weight, attn.proj.bias)


@pytest.mark.parametrize("sr_ratio,heads,hw", [(1, 1, (4, 6)), (1, 4, (5, 3)), (2, 2, (6, 8)), (4, 3, (8, 12))])
def test_attention_equals_naive_definition(sr_ratio, heads, hw):
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(24, heads, sr_ratio=sr_ratio).eval()
    x = torch.randn(2, hw[0] * hw[1], 24)
    expected = naive_attention(attn, x, hw)
    torch.testing.assert_close(attn(x, hw), expected, atol=1e-5, rtol=1e-5)
    with torch.inference_mode():  # the inference path (1x1-convolution projections)
        torch.testing.assert_close(attn(x, hw), expected, atol=1e-5, rtol=1e-5)


def test_token_linear_equals_linear():
    torch.manual_seed(0)
    lin = TokenLinear(24, 40)
    assert set(lin.state_dict()) == {"weight", "bias"}
    for x in (torch.randn(7, 24), torch.randn(2, 9, 24), torch.randn(2, 5, 6, 24),
              torch.randn(2, 24, 5, 6).permute(0, 2, 3, 1),   # channels-last view of an NCHW map
              torch.randn(3, 10, 24)[:, 1:]):                 # tokens without the class token
        with torch.no_grad():  # the 1x1-convolution path
            got = lin(x)
        assert got.shape == (*x.shape[:-1], 40)
        torch.testing.assert_close(got, F.linear(x, lin.weight, lin.bias), atol=1e-5, rtol=1e-5)
    x = torch.randn(4, 24, requires_grad=True)  # training: F.linear, gradients flow
    lin(x).sum().backward()
    torch.testing.assert_close(x.grad, lin.weight.sum(0).expand(4, -1))


def test_attention_bad_input():
    with pytest.raises(ParameterError, match="num_heads"):
        MultiHeadSelfAttention(10, 3)
    with pytest.raises(ParameterError, match="sr_ratio"):
        MultiHeadSelfAttention(8, 2, sr_ratio=0)
    with pytest.raises(ValueError, match="hw"):
        MultiHeadSelfAttention(8, 2, sr_ratio=2)(torch.randn(1, 16, 8))


def test_drop_path():
    x = torch.ones(1000, 3)
    dp = DropPath(0.25)
    assert torch.equal(dp.eval()(x), x)
    y = dp.train()(x)
    rows = y[:, 0]
    assert torch.all((rows == 0) | torch.isclose(rows, torch.tensor(1 / 0.75)))
    assert torch.all(y == y[:, :1])  # a whole sample is dropped or kept
    assert abs((rows == 0).float().mean().item() - 0.25) < 0.06
    with pytest.raises(ParameterError):
        DropPath(1.0)


def test_overlap_patch_embed_shapes():
    pe = OverlapPatchEmbed(3, 16, patch_size=7, stride=4)
    for h, w in [(32, 32), (33, 50), (5, 7)]:
        assert pe(torch.randn(1, 3, h, w)).shape == (1, math.ceil(h / 4), math.ceil(w / 4), 16)
    with pytest.raises(ParameterError):
        OverlapPatchEmbed(3, 8, patch_size=2, stride=4)


def test_vit_patch_embed_and_positional_interpolation():
    torch.manual_seed(0)
    pe = ViTPatchEmbed(3, 8, patch_size=4, img_size=16)
    x = torch.randn(2, 3, 16, 16)
    tokens, grid = pe(x)
    assert grid == (4, 4) and tokens.shape == (2, 17, 8)
    patches = F.conv2d(x, pe.proj.weight, pe.proj.bias, stride=4).flatten(2).transpose(1, 2)
    torch.testing.assert_close(tokens[:, 1:] - pe.pos_embed[:, 1:], patches)
    torch.testing.assert_close(tokens[:, 0], (pe.cls_token + pe.pos_embed[:, :1])[:, 0].expand(2, -1))
    # another size: the class entry is kept and a constant grid stays constant under bicubic resizing
    tokens, grid = pe(torch.randn(1, 3, 24, 40))
    assert grid == (6, 10) and tokens.shape == (1, 61, 8)
    const = torch.cat((torch.full((1, 1, 2), 5.0), torch.full((1, 16, 2), 3.0)), 1)
    out = resize_pos_embed(const, (4, 4), (7, 3))
    assert out.shape == (1, 22, 2) and out[0, 0, 0] == 5.0
    torch.testing.assert_close(out[:, 1:], torch.full((1, 21, 2), 3.0))
    assert resize_pos_embed(const, (4, 4), (4, 4)) is const


def test_mit_sizes_match_the_paper():
    # Table 1 of Xie et al. 2021: encoder parameters 3.4, 13.1, 24.2, 44.0, 60.8, 81.4 M.
    paper = {"mit_b0": 3.4, "mit_b1": 13.1, "mit_b2": 24.2, "mit_b3": 44.0, "mit_b4": 60.8, "mit_b5": 81.4}
    with torch.device("meta"):
        for name, millions in paper.items():
            n = sum(p.numel() for p in mit(name).parameters()) / 1e6
            assert abs(n - millions) < 0.15, (name, n)
        assert abs(sum(p.numel() for p in vit("vit_b16").parameters()) / 1e6 - 86) < 1
        assert abs(sum(p.numel() for p in vit("vit_l16").parameters()) / 1e6 - 304) < 2
    with pytest.raises(ParameterError):
        mit("mit_b9")
    with pytest.raises(ParameterError):
        MixTransformer(depths=(1, 1))


def test_mit_feature_pyramid_any_size():
    enc = MixTransformer(1, **TINY_MIT).eval()
    feats = enc(torch.randn(2, 1, 37, 50))
    assert [tuple(f.shape) for f in feats] == [(2, 8, 10, 13), (2, 16, 5, 7), (2, 24, 3, 4), (2, 32, 2, 2)]
    assert enc.reductions == (4, 8, 16, 32) and enc.out_channels == (8, 16, 24, 32)


def reference_decoder(dec: AllMLPDecoder, feats):
    """Eq. (4) of the SegFormer paper as written: project, upsample, concatenate, fuse, BN, ReLU."""
    size = feats[0].shape[-2:]
    ups = [F.interpolate(F.linear(f.permute(0, 2, 3, 1), lin.weight, lin.bias).permute(0, 3, 1, 2), size=size,
                         mode="bilinear", align_corners=False) for f, lin in zip(feats, dec.linear_c)]
    return F.relu(dec.bn(dec.linear_fuse(torch.cat(ups[::-1], 1))))


@pytest.mark.parametrize("training", [False, True])
def test_folded_decoder_equals_paper_definition(training):
    torch.manual_seed(0)
    enc = MixTransformer(3, **TINY_MIT).eval()
    dec = AllMLPDecoder(list(enc.out_channels), 16)
    with torch.no_grad():
        dec.bn.running_mean.normal_()
        dec.bn.running_var.uniform_(0.5, 2.0)
        dec.bn.weight.normal_()
        dec.bn.bias.normal_()
    feats = [f.detach() for f in enc(torch.randn(2, 3, 64, 96))]
    dec.train(training)
    ref_bn = {k: v.clone() for k, v in dec.bn.state_dict().items()}
    expected = reference_decoder(dec, feats)
    dec.bn.load_state_dict(ref_bn)  # undo the running-stat update of the reference pass
    torch.testing.assert_close(dec(feats), expected, atol=1e-5, rtol=1e-5)


def test_segformer_any_size_train_step_and_variants():
    torch.manual_seed(0)
    model = create("segformer", 3, encoder="b0", in_channels=1)
    assert model.encoder.out_channels == MIT_CONFIGS["mit_b0"]["embed_dims"]
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(2, 1, 45, 70), torch.randint(0, 3, (2, 45, 70))
    out = model(x)
    assert out.shape == (2, 3, 45, 70)
    loss = F.cross_entropy(out, y)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    opt.step()
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 17, 23)).shape == (1, 3, 17, 23)
    with pytest.raises(ParameterError, match="encoder"):
        create("segformer", 2, encoder="resnet50")
    for bad in (dict(decoder_dim=0), dict(dropout=1.0), dict(drop_path_rate=-0.1)):
        with pytest.raises(ParameterError, match=next(iter(bad))):
            create("segformer", 2, **bad)
    with torch.device("meta"):
        b2 = create("segformer", 150, encoder="mit_b2")
    assert b2.decoder.dim == 768


@pytest.mark.parametrize("decoder", ["naive", "pup", "mla"])
def test_setr_any_size_and_train_step(decoder):
    torch.manual_seed(0)
    model = create("setr", 4, encoder=TINY_VIT, decoder=decoder, img_size=64, channels=16)
    if decoder == "mla":
        assert model.encoder.out_indices == (1, 2, 3, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for h, w in [(64, 64), (50, 83)]:
        out = model(torch.randn(2, 3, h, w))
        assert out.shape == (2, 4, h, w)
        F.cross_entropy(out, torch.randint(0, 4, (2, h, w))).backward()
        opt.step()
        opt.zero_grad()
    grads = [p.grad for p in model.parameters()]
    assert all(g is None or torch.isfinite(g).all() for g in grads)


def test_setr_defaults_and_bad_arguments():
    with torch.device("meta"):
        model = create("setr", 19, decoder="mla")
    assert isinstance(model.encoder, VisionTransformer)
    assert model.encoder.out_indices == (6, 12, 18, 24) and model.encoder.patch_embed.grid == (32, 32)
    with pytest.raises(ParameterError, match="decoder"):
        create("setr", 2, encoder=TINY_VIT, decoder="fancy")
    with pytest.raises(ParameterError, match="channels"):
        create("setr", 2, encoder=TINY_VIT, channels=1)
    with pytest.raises(ParameterError, match="img_size"):
        create("setr", 2, encoder=TINY_VIT, img_size=8)
    with pytest.raises(ParameterError, match="encoder"):
        create("setr", 2, encoder=dict(TINY_VIT, width=3))
    with pytest.raises(ParameterError, match="encoder"):
        create("setr", 2, encoder="vit_h14")
    with pytest.raises(ParameterError, match="depth"):
        create("setr", 2, encoder=dict(TINY_VIT, depth=2), decoder="mla")
    with pytest.raises(ParameterError, match="out_indices"):
        VisionTransformer(depth=2, out_indices=(3,))
    with pytest.raises(SeglabError, match="N x C x H x W"):
        create("segformer", 2)(torch.randn(3, 8, 8))
