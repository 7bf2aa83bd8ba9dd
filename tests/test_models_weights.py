"""Weights: torchvision files into encoders, seglab checkpoints, Hugging Face delegation, bad files."""
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import seglab.models.hf as hf
from _torchvision_layout import LAYOUTS, random_state
from seglab.errors import InputFileError, SeglabError
from seglab.models import create, load_checkpoint, load_pretrained, read_checkpoint, save_checkpoint
from seglab.models.weights import load_state


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    """A file laid out as torchvision writes ``resnet18-f37072fd.pth`` (random values)."""
    sd = random_state(LAYOUTS["resnet18"](), seed=3)
    path = tmp_path_factory.mktemp("tv") / "resnet18.pth"
    torch.save(sd, path)
    return path, sd


def _encoder_equal(model, sd, skip=("fc.",)):
    own = model.encoder.state_dict()
    for k, v in sd.items():
        if k.startswith(skip) or k == "conv1.weight":
            continue
        assert torch.equal(own[k], v), k


def test_torchvision_file_loads_into_encoder_through_create(resnet18_file):
    path, sd = resnet18_file
    model = create("deeplabv3plus", 3, encoder="resnet18", pretrained=str(path))
    _encoder_equal(model, sd)
    assert torch.equal(model.encoder.conv1.weight, sd["conv1.weight"])


@pytest.mark.parametrize("in_channels", [1, 4])
def test_torchvision_file_adapts_first_conv(resnet18_file, in_channels):
    path, sd = resnet18_file
    model = create("unet", 2, encoder="resnet18", base_width=2, in_channels=in_channels, pretrained=path)
    w = sd["conv1.weight"]
    expect = w.sum(1, keepdim=True) if in_channels == 1 else torch.cat([w, w[:, :1]], 1) * 0.75
    torch.testing.assert_close(model.encoder.conv1.weight.detach(), expect)
    _encoder_equal(model, sd)


def test_torchvision_safetensors_file_loads(tmp_path):
    sd = random_state(LAYOUTS["mobilenet_v2"](), seed=4)
    path = tmp_path / "mnv2.safetensors"
    save_file(sd, str(path))
    model = create("deeplabv3", 2, encoder="mobilenet_v2", pretrained=path)
    own = model.encoder.state_dict()
    assert all(torch.equal(own[k], v) for k, v in sd.items() if not k.startswith("classifier."))


def test_vgg16_checkpoint_gives_fcn_its_fc6_fc7():
    with torch.device("meta"):
        model = create("fcn8s", 21)
    sd = {k: torch.empty(s, device="meta") for k, s in LAYOUTS["vgg16"]().items()}
    load_state(model, sd)  # strict: fc8 (classifier.6) is the only key left unused
    del sd["classifier.3.weight"]
    with pytest.raises(InputFileError, match="missing 1 .*classifier.3.weight"):
        load_state(model, sd)


def test_vgg16_bn_checkpoint_fits_segnet():
    with torch.device("meta"):
        model = create("segnet", 2)
    load_state(model, {k: torch.empty(s, device="meta") for k, s in LAYOUTS["vgg16_bn"]().items()})
    with pytest.raises(InputFileError, match="features.7.weight. has shape"):  # VGG16 without BN: shifted indices
        load_state(model, {k: torch.empty(s, device="meta") for k, s in LAYOUTS["vgg16"]().items()})


def test_wrong_checkpoints_fail_with_one_line(tmp_path, resnet18_file):
    path, sd = resnet18_file
    with pytest.raises(InputFileError, match="parameter 'layer1.0.conv1.weight' has shape"):
        create("deeplabv3", 2, encoder="resnet50", pretrained=path)  # resnet18 file, resnet50 encoder
    bad = dict(sd)
    bad["layer9.weight"] = torch.zeros(1)
    torch.save(bad, tmp_path / "extra.pth")
    with pytest.raises(InputFileError, match="unexpected 1 .*layer9.weight"):
        create("deeplabv3", 2, encoder="resnet18", pretrained=tmp_path / "extra.pth")
    with pytest.raises(InputFileError, match="no such weights file") as exc:
        create("unet", 2, pretrained=tmp_path / "nope.pth")
    assert "\n" not in str(exc.value)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(InputFileError, match="junk.pth: not a readable weights file"):
        create("unet", 2, base_width=2, pretrained=tmp_path / "junk.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(InputFileError, match="not a state dict"):
        create("unet", 2, base_width=2, pretrained=tmp_path / "list.pth")
    with pytest.raises(InputFileError, match="keys do not fit UNet"):  # plain U-Net has no encoder to fall back on
        create("unet", 2, base_width=2, pretrained=path)


def test_checkpoint_round_trip_rebuilds_the_model(tmp_path):
    torch.manual_seed(0)
    model = create("unet", 3, in_channels=1, depth=2, base_width=3, variant="valid").eval()
    extra = {"epoch": 7, "miou": np.float32(0.5), "out": tmp_path, "opt": torch.optim.SGD(model.parameters(), 0.1).state_dict()}
    path = save_checkpoint(tmp_path / "ck" / "unet.pt", model, extra=extra)
    ck = read_checkpoint(path)
    assert ck["model"] == "unet" and ck["extra"]["epoch"] == 7 and ck["extra"]["miou"] == 0.5
    assert ck["extra"]["out"] == str(tmp_path) and ck["extra"]["opt"]["param_groups"][0]["lr"] == 0.1
    assert ck["config"] == {"num_classes": 3, "in_channels": 1, "depth": 2, "base_width": 3, "variant": "valid"}
    again = load_checkpoint(path).eval()
    x = torch.randn(1, 1, 30, 41)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x), rtol=0, atol=0)
    # and as ``pretrained`` of a model of the same name
    other = create("unet", 3, in_channels=1, depth=2, base_width=3, variant="valid", pretrained=path).eval()
    with torch.no_grad():
        torch.testing.assert_close(other(x), model(x), rtol=0, atol=0)
    with pytest.raises(InputFileError, match="checkpoint of model 'unet', not 'segnet'"):
        create("segnet", 3, pretrained=path)


def test_plain_state_dict_of_the_whole_model_loads(tmp_path):
    model = create("deeplabv3", 2, encoder="resnet18")
    torch.save(model.state_dict(), tmp_path / "m.pth")
    other = create("deeplabv3", 2, encoder="resnet18", pretrained=tmp_path / "m.pth")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))


def test_read_checkpoint_rejects_other_files(tmp_path, resnet18_file):
    with pytest.raises(InputFileError, match="no such checkpoint file"):
        read_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(InputFileError, match="not a seglab checkpoint"):
        read_checkpoint(resnet18_file[0])
    with pytest.raises(SeglabError, match="pass name= and config="):
        save_checkpoint(tmp_path / "x.pt", torch.nn.Linear(2, 2))
    path = save_checkpoint(tmp_path / "lin.pt", torch.nn.Linear(2, 2), name="unet", config={"num_classes": 2})
    assert read_checkpoint(path)["model"] == "unet"


def test_hugging_face_specs_are_delegated(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(hf, "load_hf_weights", lambda model, spec: calls.append(spec) or model)
    model = create("unet", 2, base_width=2)
    load_pretrained(model, "hf:nvidia/segformer-b0-finetuned-ade-512-512")
    save_file({"segformer.encoder.block.0.0.mlp.dense1.weight": torch.zeros(2, 2)}, str(tmp_path / "model.safetensors"))
    load_pretrained(model, tmp_path / "model.safetensors")
    load_pretrained(model, tmp_path)  # a snapshot folder
    assert calls == ["hf:nvidia/segformer-b0-finetuned-ade-512-512", tmp_path / "model.safetensors", tmp_path]
    monkeypatch.delattr(hf, "load_hf_weights")
    with pytest.raises(SeglabError, match="needs seglab.models.hf.load_hf_weights"):
        load_pretrained(model, "hf:nvidia/mit-b0")


def test_junk_weights_file_is_a_one_line_error(tmp_path):
    from seglab.errors import InputFileError
    from seglab.models.weights import load_pretrained
    from seglab.models import create

    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"junk")
    with pytest.raises(InputFileError, match="junk.pth: not a readable weights file"):
        load_pretrained(create("unet", 2, base_width=8, depth=2), junk)
