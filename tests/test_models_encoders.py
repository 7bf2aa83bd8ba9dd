"""Encoders: torchvision's state_dict layout, strict loading, in_channels adaptation, output strides."""
import pytest
import torch

from _torchvision_layout import LAYOUTS, PARAM_COUNTS, n_params, random_state
from seglab.errors import ParameterError
from seglab.models.encoders import ENCODERS, adapt_first_conv, create_encoder



@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_layout_tables_match_torchvision_parameter_counts(name):
    assert n_params(LAYOUTS[name]()) == PARAM_COUNTS[name]


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_state_dict_keys_and_shapes_equal_torchvision(name):
    with torch.device("meta"):  # shapes only: fast even for VGG's 138 M parameters
        enc = create_encoder(name, include_head=True)
    got = {k: tuple(v.shape) for k, v in enc.state_dict().items()}
    assert got == LAYOUTS[name]()
    assert sum(p.numel() for p in enc.parameters()) == PARAM_COUNTS[name]


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_torchvision_state_dict_loads_strictly_and_is_used(name):
    sd = random_state(LAYOUTS[name](), seed=1)
    enc = create_encoder(name, include_head=True).eval()
    enc.load_state_dict(sd, strict=True)
    for k, v in enc.state_dict().items():
        assert torch.equal(v, sd[k]), k
    with torch.no_grad():
        assert enc.classify(torch.randn(1, 3, 32, 32)).shape == (1, 1000)


def test_old_torchvision_checkpoint_without_num_batches_tracked_loads():
    sd = {k: v for k, v in random_state(LAYOUTS["resnet18"]()).items() if "num_batches_tracked" not in k}
    create_encoder("resnet18", include_head=True).load_state_dict(sd, strict=True)


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_registry_channels_and_reductions_match_features(name):
    spec = ENCODERS[name]
    enc = create_encoder(name, in_channels=2).eval()
    with torch.no_grad():
        feats = enc(torch.randn(1, 2, 32, 64))
    assert tuple(f.shape[1] for f in feats) == spec.out_channels == enc.out_channels
    assert tuple(32 // f.shape[2] for f in feats) == spec.reductions == enc.reductions
    assert tuple(64 // f.shape[3] for f in feats) == spec.reductions


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
@pytest.mark.parametrize("os_", [8, 16, 32])
def test_output_stride_by_dilation(name, os_):
    enc = create_encoder(name, output_stride=os_).eval()
    with torch.no_grad():
        feats = enc(torch.randn(1, 3, 32, 32))
    sizes = [f.shape[-1] for f in feats]
    assert sizes == [32 // min(r, os_) for r in (2, 4, 8, 16, 32)]
    assert enc.reductions == tuple(min(r, os_) for r in (2, 4, 8, 16, 32))
    # dilation changes no parameter: the same checkpoint fits every output stride
    ref = create_encoder(name, output_stride=32).state_dict()
    assert {k: v.shape for k, v in enc.state_dict().items()} == {k: v.shape for k, v in ref.items()}


def test_resnet50_dilation_follows_torchvision():
    """replace_stride_with_dilation=[False, True, True]: layer3's first block keeps dilation 1 and stride 1,
    the other layer3 blocks dilate by 2; layer4's first block has dilation 2, the others 4."""
    enc = create_encoder("resnet50", output_stride=8)
    assert enc.layer3[0].conv2.stride == (1, 1) and enc.layer3[0].conv2.dilation == (1, 1)
    assert enc.layer3[1].conv2.dilation == (2, 2) and enc.layer3[1].conv2.padding == (2, 2)
    assert enc.layer4[0].conv2.dilation == (2, 2) and enc.layer4[2].conv2.dilation == (4, 4)
    assert enc.layer3[0].downsample[0].stride == (1, 1)


def test_output_stride_16_changes_only_layer4():
    """Dilation replaces layer4's stride only: the shallower features are those of the plain network."""
    a = create_encoder("resnet18", output_stride=32).eval()
    b = create_encoder("resnet18", output_stride=16).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        fa, fb = a(x), b(x)
    for u, v in zip(fa[:4], fb[:4]):
        assert torch.equal(u, v)
    assert fa[4].shape[-1] == 2 and fb[4].shape[-1] == 4


def test_adapt_first_conv_rules():
    w = torch.randn(8, 3, 3, 3)
    one = adapt_first_conv(w, 1)
    torch.testing.assert_close(one, w.sum(1, keepdim=True))
    four = adapt_first_conv(w, 4)
    torch.testing.assert_close(four[:, :3], w * 0.75)
    torch.testing.assert_close(four[:, 3], w[:, 0] * 0.75)
    conv = torch.nn.functional.conv2d
    # one channel: a gray image gets the response the RGB kernel gives to R = G = B = gray
    x = torch.randn(1, 1, 9, 9)
    torch.testing.assert_close(conv(x, one), conv(x.expand(-1, 3, -1, -1), w), rtol=1e-4, atol=1e-5)
    # six channels: an image made of the RGB image twice gets the RGB response
    rgb = torch.randn(1, 3, 9, 9)
    torch.testing.assert_close(conv(torch.cat([rgb, rgb], 1), adapt_first_conv(w, 6)), conv(rgb, w),
                               rtol=1e-4, atol=1e-5)
    assert adapt_first_conv(w, 3) is w


def test_bad_encoder_arguments():
    with pytest.raises(ParameterError, match="unknown encoder 'resnet7'"):
        create_encoder("resnet7")
    with pytest.raises(ParameterError, match="output_stride"):
        create_encoder("vgg16", output_stride=16)
    with pytest.raises(ParameterError, match="output_stride"):
        create_encoder("resnet18", output_stride=4)
    with pytest.raises(ParameterError, match="in_channels"):
        create_encoder("resnet18", in_channels=0)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_resnet_matches_monai_resnet_with_the_same_weights(name):
    """Peer check of the whole forward pass: MONAI's 2-D ResNet (shortcut B, 7x7/2 stem) has torchvision's
    layout plus a bias in each downsample convolution, which we set to zero."""
    nets = pytest.importorskip("monai.networks.nets")
    peer = getattr(nets, name)(spatial_dims=2, n_input_channels=3, conv1_t_size=7, conv1_t_stride=2,
                               shortcut_type="B", num_classes=1000).eval()
    sd = random_state(LAYOUTS[name](), seed=5)
    ours = create_encoder(name, include_head=True).eval()
    ours.load_state_dict(sd, strict=True)
    result = peer.load_state_dict(sd, strict=False)
    assert not result.unexpected_keys and all(k.endswith("downsample.0.bias") for k in result.missing_keys)
    for k in result.missing_keys:
        peer.state_dict()[k].zero_()
    x = torch.randn(2, 3, 48, 40)
    with torch.no_grad():
        torch.testing.assert_close(ours.classify(x), peer(x), rtol=1e-4, atol=1e-4)
