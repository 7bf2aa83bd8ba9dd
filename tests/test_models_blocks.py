"""Building blocks, each against its definition."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seglab.models.base import mirror_pad
from seglab.models.blocks import (ASPP, AtrousConv2d, BedOfNailsUpsample, BilinearUpsample, ConcatSkip, ConvBNReLU,
                                  DepthwiseSeparableConv, MaxPoolWithIndices, MaxUnpool, NearestUpsample, SumSkip,
                                  TransposedConvUpsample, bilinear_kernel, center_crop)


def _bilinear_reference(a: np.ndarray, s: int) -> np.ndarray:
    """Bilinear upsampling by ``s`` with pixel centres at half-integers, written out with numpy: output
    pixel ``o`` samples source coordinate ``(o + 0.5) / s - 0.5``, clamped to the image."""
    def axis(n):
        src = np.clip((np.arange(n * s) + 0.5) / s - 0.5, 0, n - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n - 1)
        return lo, hi, src - lo

    (r0, r1, fr), (c0, c1, fc) = axis(a.shape[0]), axis(a.shape[1])
    top = a[r0][:, c0] * (1 - fc) + a[r0][:, c1] * fc
    bot = a[r1][:, c0] * (1 - fc) + a[r1][:, c1] * fc
    return top * (1 - fr)[:, None] + bot * fr[:, None]


def test_nearest_repeats_each_value():
    x = torch.arange(6.0).view(1, 1, 2, 3)
    y = NearestUpsample(3)(x)
    assert torch.equal(y[0, 0], x[0, 0].repeat_interleave(3, 0).repeat_interleave(3, 1))


def test_bed_of_nails_puts_values_top_left_and_zeros_elsewhere():
    x = torch.randn(2, 3, 4, 5)
    y = BedOfNailsUpsample(2)(x)
    assert y.shape == (2, 3, 8, 10)
    assert torch.equal(y[..., ::2, ::2], x)
    mask = torch.ones_like(y, dtype=torch.bool)
    mask[..., ::2, ::2] = False
    assert torch.count_nonzero(y[mask]) == 0


@pytest.mark.parametrize("s", [2, 3, 4])
def test_bilinear_matches_written_out_interpolation(s):
    a = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32)
    y = BilinearUpsample(s)(torch.from_numpy(a)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(y, _bilinear_reference(a, s), rtol=1e-5, atol=1e-5)


def test_max_unpool_restores_values_at_pool_indices():
    x = torch.randn(2, 3, 6, 8)
    pooled, idx, size = MaxPoolWithIndices(2)(x)
    y = MaxUnpool(2)(pooled, idx, size)
    assert y.shape == x.shape
    # numpy argmax in each 2 x 2 cell
    cells = x.view(2, 3, 3, 2, 4, 2).permute(0, 1, 2, 4, 3, 5).reshape(2, 3, 3, 4, 4)
    arg = cells.argmax(-1)
    rows = torch.arange(3)[:, None] * 2 + arg // 2
    cols = torch.arange(4)[None, :] * 2 + arg % 2
    expect = torch.zeros_like(x)
    for n in range(2):
        for c in range(3):
            expect[n, c, rows[n, c], cols[n, c]] = cells.amax(-1)[n, c]
    assert torch.equal(y, expect)
    assert torch.count_nonzero(y) == pooled.numel()


def test_max_unpool_odd_size():
    x = torch.randn(1, 1, 7, 5)
    pooled, idx, size = MaxPoolWithIndices(2)(x)
    assert MaxUnpool(2)(pooled, idx, size).shape == (1, 1, 7, 5)


def test_bilinear_kernel_is_fcn_upsample_filt():
    k = bilinear_kernel(2)
    f = torch.tensor([0.25, 0.75, 0.75, 0.25])
    torch.testing.assert_close(k, f[:, None] * f[None, :])
    assert bilinear_kernel(3).shape == (5, 5) and bilinear_kernel(3)[2, 2] == 1


@pytest.mark.parametrize("s", [2, 3, 4, 8])
def test_transposed_conv_bilinear_init_equals_interpolate_in_interior(s):
    up = TransposedConvUpsample(3, 3, s)
    x = torch.randn(2, 3, 9, 11)
    with torch.no_grad():
        y = up(x)
    ref = F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
    assert y.shape == ref.shape == (2, 3, 9 * s, 11 * s)
    torch.testing.assert_close(y[..., s:-s, s:-s], ref[..., s:-s, s:-s], rtol=1e-5, atol=1e-5)
    assert up.weight.requires_grad  # learnable, only initialised as bilinear


def test_transposed_conv_validation_and_plain_init():
    with pytest.raises(ValueError, match="in_channels == out_channels"):
        TransposedConvUpsample(3, 4, 2)
    up = TransposedConvUpsample(3, 4, 2, bilinear_init=False)
    assert up(torch.randn(1, 3, 5, 5)).shape == (1, 4, 10, 10)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_atrous_conv_equals_conv_with_zero_inserted_kernel(d):
    torch.manual_seed(0)
    conv = AtrousConv2d(2, 4, 3, dilation=d)
    k = conv.weight.detach()
    big = torch.zeros(4, 2, 2 * d + 1, 2 * d + 1)
    big[:, :, ::d, ::d] = k  # the 3 x 3 taps spread out with d - 1 zeros between them
    x = torch.randn(1, 2, 12, 13)
    with torch.no_grad():
        y = conv(x)
    ref = F.conv2d(x, big, conv.bias.detach(), padding=d)
    assert y.shape == x.shape[:1] + (4,) + x.shape[2:]
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)


def test_depthwise_separable_parameter_count():
    cin, cout, k = 32, 64, 3
    m = DepthwiseSeparableConv(cin, cout, k, dilation=2)
    n = sum(p.numel() for p in m.parameters())
    assert n == k * k * cin + 2 * cin + cin * cout + 2 * cout  # weights + BN affine, no conv biases
    assert n < k * k * cin * cout
    assert m[0][0].groups == cin and m[0][0].dilation == (2, 2)
    assert m(torch.randn(2, cin, 9, 9)).shape == (2, cout, 9, 9)


def test_conv_bn_relu_valid_and_padded():
    x = torch.randn(2, 3, 10, 12)
    assert ConvBNReLU(3, 5, 3, padding=0)(x).shape == (2, 5, 8, 10)
    y = ConvBNReLU(3, 5, 3, dilation=4)(x)
    assert y.shape == (2, 5, 10, 12) and (y >= 0).all()
    assert ConvBNReLU(3, 5, bn=False)[0].bias is not None and len(ConvBNReLU(3, 5, relu=False)) == 2


@pytest.mark.parametrize("separable", [False, True])
def test_aspp_branches_rates_and_shape(separable):
    aspp = ASPP(16, 8, rates=(2, 4, 6), separable=separable).eval()
    assert len(aspp.branches) == 1 + 3 + 1
    dil = []
    for b in aspp.branches[1:4]:
        dil.append([m.dilation[0] for m in b.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)])
    assert dil == [[2], [4], [6]]
    x = torch.randn(2, 16, 13, 9)
    assert aspp(x).shape == (2, 8, 13, 9)
    assert aspp.project[0][0].in_channels == 5 * 8
    pooled = aspp.branches[-1](x)  # image-level feature: constant over the image
    assert torch.allclose(pooled, pooled[..., :1, :1].expand_as(pooled))


def test_sum_and_concat_skips():
    coarse, skip = torch.randn(1, 4, 10, 10), torch.randn(1, 4, 8, 8)
    torch.testing.assert_close(SumSkip()(coarse, skip), coarse[..., 1:9, 1:9] + skip)
    # U-Net paper, first level: 64 x 568 x 568 encoder map cropped to the 392 x 392 up-convolved map
    up, enc = torch.randn(1, 2, 392, 392), torch.randn(1, 3, 568, 568)
    y = ConcatSkip()(up, enc)
    assert y.shape == (1, 5, 392, 392)
    assert torch.equal(y[:, :3], enc[..., 88:480, 88:480]) and torch.equal(y[:, 3:], up)
    with pytest.raises(ValueError, match="cannot crop"):
        center_crop(torch.randn(1, 1, 4, 4), 5, 4)


@pytest.mark.parametrize("pad", [(2, 1, 3, 0), (7, 9, 12, 5)])
def test_mirror_pad_matches_numpy_reflect(pad):
    a = np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32)
    l, r, t, b = pad
    y = mirror_pad(torch.from_numpy(a)[None, None], pad)[0, 0].numpy()
    np.testing.assert_array_equal(y, np.pad(a, ((t, b), (l, r)), mode="reflect"))
