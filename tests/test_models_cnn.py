"""Convolutional models: any input size, logits at input resolution, one training step, architecture facts."""
import json

import pytest
import torch
import torch.nn.functional as F

import seglab.models
from seglab.cli.main import main
from seglab.models.cost import model_cost
from seglab.errors import ParameterError, SeglabError
from seglab.models import create, list_models

# small configurations of every convolutional model (the defaults are checked on the meta device)
CONFIGS = [
    ("patch_classifier", {"width": 4, "hidden": 8}),
    ("fcn32s", {"fc_channels": 32}),
    ("fcn16s", {"fc_channels": 32}),
    ("fcn8s", {"fc_channels": 32}),
    ("segnet", {}),
    ("segnet_basic", {"width": 8}),
    ("unet", {"base_width": 4}),
    ("unet", {"base_width": 4, "depth": 3, "variant": "valid"}),
    ("unet", {"base_width": 2, "encoder": "resnet18"}),
    ("deeplabv3", {"encoder": "resnet18"}),
    ("deeplabv3", {"encoder": "mobilenet_v2", "output_stride": 8}),
    ("deeplabv3plus", {"encoder": "resnet18", "output_stride": 8}),
    ("deeplabv3plus", {"encoder": "mobilenet_v2"}),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for n, kw in CONFIGS]
CNN = ["patch_classifier", "fcn32s", "fcn16s", "fcn8s", "segnet", "segnet_basic", "unet", "deeplabv3", "deeplabv3plus"]


def test_every_cnn_is_registered_and_builds_with_defaults():
    names = {s.name for s in list_models()}
    assert set(CNN) <= names
    for name in CNN:
        with torch.device("meta"):
            model = create(name, 21)
        assert model.seglab_name == name and model.seglab_config["num_classes"] == 21


@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_any_input_size_gives_logits_at_input_resolution(name, kw):
    torch.manual_seed(0)
    model = create(name, 3, **kw).eval()
    gray = create(name, 2, in_channels=1, **kw).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 37, 53)).shape == (1, 3, 37, 53)
        assert gray(torch.randn(1, 1, 64, 64)).shape == (1, 2, 64, 64)


@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_trains_one_step(name, kw):
    torch.manual_seed(0)
    model = create(name, 4, in_channels=1, **kw).train()
    x, y = torch.randn(2, 1, 29, 31), torch.randint(0, 4, (2, 29, 31))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    before = [p.detach().clone() for p in model.parameters()]
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    opt.step()
    changed = sum(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert changed > 0.9 * len(before)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_bad_arguments():
    with pytest.raises(ParameterError, match="unknown model"):
        create("fcn4s", 3)
    with pytest.raises(ParameterError, match="num_classes"):
        create("unet", 0)
    with pytest.raises(ParameterError, match="does not take encoder 'resnet18'"):
        create("fcn8s", 3, encoder="resnet18")
    with pytest.raises(ParameterError, match="does not take encoder 'vgg16'"):
        create("deeplabv3", 3, encoder="vgg16")
    with pytest.raises(ParameterError, match="model 'unet' has no option 'output_stride'; options: base_width"):
        create("unet", 3, output_stride=16)
    with pytest.raises(ParameterError, match="variant"):
        create("unet", 3, variant="same")
    with pytest.raises(ParameterError, match="variant"):
        create("unet", 3, variant="valid", encoder="resnet18")
    with pytest.raises(ParameterError, match="output_stride"):
        create("deeplabv3plus", 3, encoder="resnet18", output_stride=32)
    with pytest.raises(SeglabError, match="encoder"):
        create("patch_classifier", 3, encoder="resnet18")
    with pytest.raises(SeglabError, match="N x C x H x W"):
        create("unet", 3, base_width=2)(torch.randn(3, 16, 16))


def test_patch_classifier_dense_evaluation_equals_sliding_window():
    torch.manual_seed(0)
    model = create("patch_classifier", 3, in_channels=2, width=4, hidden=8).eval()
    x = torch.randn(1, 2, 19, 23)
    with torch.no_grad():
        dense, sliding = model(x), model.sliding_window(x, batch=100)
    torch.testing.assert_close(dense, sliding, rtol=1e-5, atol=1e-5)
    # the centre pixel of each window is the one being classified: a window cut from the image by hand
    with torch.no_grad():
        window = F.pad(x, (10, 10, 10, 10), mode="reflect")[..., 5:26, 7:28]
        torch.testing.assert_close(model.encoder.patches(window)[0], dense[0, :, 5, 7], rtol=1e-5, atol=1e-5)
    with pytest.raises(SeglabError, match="21 x 21"):
        model.encoder.patches(torch.randn(1, 2, 20, 20))


def test_fcn_fc6_fc7_as_convolutions_equal_the_classifier_layers():
    torch.manual_seed(0)
    enc = create("fcn8s", 3, fc_channels=16).encoder.eval()
    p5 = torch.randn(1, 512, 7, 7)
    with torch.no_grad():
        conv = enc.fc_as_conv(p5)[0, :, 3, 3]
        fc = enc.classifier[4](enc.classifier[3](enc.classifier[1](enc.classifier[0](p5.flatten(1)))))[0]
    torch.testing.assert_close(conv, fc, rtol=1e-4, atol=1e-5)


def test_fcn_skip_scores_start_at_zero_and_upsampling_as_bilinear():
    model = create("fcn8s", 3, fc_channels=16)
    for layer in (model.decoder.score_pool4, model.decoder.score_pool3):
        assert torch.count_nonzero(layer.weight) == 0 and torch.count_nonzero(layer.bias) == 0
    assert model.head.stride == (8, 8) and create("fcn32s", 3, fc_channels=16).head.stride == (32, 32)
    assert not model.head.weight.requires_grad and all(up.weight.requires_grad for up in model.decoder.up)
    x = torch.randn(1, 3, 4, 5)
    with torch.no_grad():  # the final upsampling is bilinear interpolation (away from the border)
        torch.testing.assert_close(model.head(x)[..., 8:-8, 8:-8],
                                   F.interpolate(x, scale_factor=8, mode="bilinear")[..., 8:-8, 8:-8])
    assert len(create("fcn16s", 3, fc_channels=16).decoder.up) == 1


def test_segnet_unpools_with_encoder_indices():
    torch.manual_seed(0)
    model = create("segnet", 2).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        bottom, pools = model.encoder(x)
        assert [tuple(size) for _, size in pools] == [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]
        sparse = model.decoder.unpool(bottom, *pools[-1])
    nz = sparse[0].flatten(1) != 0
    pos = torch.zeros_like(nz)
    pos.scatter_(1, pools[-1][0][0].flatten(1), True)
    assert torch.equal(nz & ~pos, torch.zeros_like(nz))  # non-zeros only where the maxima were
    convs = [m for m in model.decoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 13 and all(c.weight.requires_grad for c in convs)  # the mirror of VGG16's 13


def test_segnet_basic_is_the_papers_network():
    model = create("segnet_basic", 11)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs[:8]] == [(7, 7)] * 8 and {c.out_channels for c in convs[:8]} == {64}
    assert convs[-1].kernel_size == (1, 1) and convs[-1].out_channels == 11
    # decoders: conv + BN, no ReLU
    assert not any(isinstance(m, torch.nn.ReLU) for m in model.decoder.modules())
    x = torch.randn(1, 3, 45, 61)   # odd sizes: unpooling restores each encoder size
    with torch.no_grad():
        assert model.eval()(x).shape == (1, 11, 45, 61)
    with pytest.raises(ParameterError):
        create("segnet_basic", 2, kernel=4)
    with pytest.raises(ParameterError):
        create("segnet_basic", 2, encoder="resnet18")


def test_unet_valid_geometry_of_the_paper():
    model = create("unet", 2, variant="valid", base_width=2)
    assert model.margin == 92 and model.padded_size(388) == 572  # 572 x 572 tile -> 388 x 388 output
    assert model.padded_size(389) == 572 + 16
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert all(c.padding == (0, 0) for c in convs) and len(convs) == 18


def test_unet_valid_output_is_aligned_with_the_input():
    """Overlap-tile: the logits for an interior pixel do not depend on which tile it was computed in."""
    torch.manual_seed(0)
    model = create("unet", 2, in_channels=1, variant="valid", depth=2, base_width=2).eval()
    x = torch.randn(1, 1, 112, 112)
    with torch.no_grad():
        full = model(x)
        tile = model(x[..., 32:112, 24:104])  # shifted by multiples of 2**depth
    torch.testing.assert_close(full[..., 60:84, 52:76], tile[..., 28:52, 28:52], rtol=1e-4, atol=1e-5)


def test_unet_depth_and_width():
    model = create("unet", 2, depth=3, base_width=5)
    assert model.encoder.out_channels == (5, 10, 20, 40) and model.stride == 8
    assert [b.up.out_channels for b in model.decoder.blocks] == [20, 10, 5]
    enc_model = create("unet", 2, encoder="resnet34", base_width=16)
    assert [b.up.out_channels for b in enc_model.decoder.blocks] == [256, 128, 64, 32, 16]


@pytest.mark.parametrize("os_,rates", [(16, [6, 12, 18]), (8, [12, 24, 36])])
def test_deeplab_aspp_rates_follow_output_stride(os_, rates):
    for name in ("deeplabv3", "deeplabv3plus"):
        with torch.device("meta"):
            model = create(name, 3, encoder="resnet50", output_stride=os_)
        got = []
        for b in model.decoder.aspp.branches[1:-1]:
            got += [m.dilation[0] for m in b.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
        assert got == rates
        assert model.encoder.reductions[-1] == os_
    assert model.decoder.reduce[0].in_channels == 256  # DeepLabV3+ decoder reads ResNet-50's 1/4 features


def test_model_cost_counts_flops_of_the_definition():
    """Patch classifier at 512 x 512 (mirrored to 532), dense: every conv is 2 * Cin * Cout * k * k FLOPs per
    output pixel; output sizes 530, 524 (after a 3x3 pool and a dilated-2 conv), 512, 512."""
    params, gflops = model_cost("patch_classifier", num_classes=21, size=512)
    expect = 2 * (3 * 16 * 9 * 530 ** 2 + 16 * 32 * 9 * 524 ** 2 + 32 * 64 * 9 * 512 ** 2 + 64 * 21 * 512 ** 2)
    assert gflops == pytest.approx(expect / 1e9)
    assert params == (3 * 16 * 9 + 16) + (16 * 32 * 9 + 32) + (32 * 64 * 9 + 64) + (64 * 21 + 21)


def test_models_cli_json(monkeypatch, capsys):
    specs = [s for s in list_models() if s.name in ("patch_classifier", "fcn8s")]
    monkeypatch.setattr(seglab.models, "list_models", lambda: specs)
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"patch_classifier", "fcn8s"}
    assert rows["fcn8s"]["parameters"] == 134_489_759 and rows["fcn8s"]["gflops_512"] > 200
    assert rows["patch_classifier"]["options"] == {"encoder": None, "width": 16, "hidden": 64}
    assert main(["models"]) == 0 and "fcn8s" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("name", CNN)
def test_default_configuration_trains_one_step(name):
    torch.manual_seed(0)
    model = create(name, 3).train()
    x, y = torch.randn(2, 3, 33, 35), torch.randint(0, 3, (2, 33, 35))
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=1e-3).step()
    assert torch.isfinite(loss) and all(torch.isfinite(p).all() for p in model.parameters())
