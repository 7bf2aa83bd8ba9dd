"""ImageNet encoder weights (``encoder_weights``): torchvision's real MobileNetV2 file loads strictly into
U-Net and DeepLabV3+, gives the features of an independent plain-torch MobileNetV2 and, with its own
classifier, recognises a natural image; missing or wrong files give one-line errors."""
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from seglab.errors import InputFileError, ParameterError
from seglab.models import create
from seglab.models.encoder_weights import IMAGENET, IMAGENET_MEAN, IMAGENET_STD, imagenet_file
from seglab.models.encoders import create_encoder
from seglab.models.state_dicts import read_state_file

FILE = IMAGENET["mobilenet_v2"].filename
# the paper's Table 2: expansion t, channels c, repeats n, stride s
TABLE = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


@pytest.fixture(scope="module")
def mbv2_file(weights_dir):
    return weights_dir / FILE


@pytest.fixture(scope="module")
def state(mbv2_file):
    return read_state_file(mbv2_file)


def reference_features(sd: dict, x: torch.Tensor) -> list[torch.Tensor]:
    """MobileNetV2 written out with functional ops on the file's tensors (no seglab module): the output of
    every block of ``features`` (torchvision's layout)."""
    def cbr(x, prefix, stride=1, groups=1, act=True):
        w = sd[prefix + ".weight" if prefix + ".weight" in sd else prefix + ".0.weight"]
        bn = prefix[:-1] + str(int(prefix[-1]) + 1) if prefix + ".weight" in sd else prefix + ".1"
        x = F.conv2d(x, w, None, stride, w.shape[-1] // 2, 1, groups)
        x = F.batch_norm(x, sd[bn + ".running_mean"], sd[bn + ".running_var"], sd[bn + ".weight"],
                         sd[bn + ".bias"], False, 0.0, 1e-5)
        return F.relu6(x) if act else x

    outs = [cbr(x, "features.0", 2)]
    x, cin, i = outs[0], 32, 1
    for t, c, n, s in TABLE:
        for r in range(n):
            p, stride, y = f"features.{i}.conv", s if r == 0 else 1, x
            if t != 1:
                y = cbr(y, p + ".0")
            y = cbr(y, p + (".1" if t != 1 else ".0"), stride, groups=y.shape[1])
            y = cbr(y, p + (".2" if t != 1 else ".1"), act=False)
            x = x + y if stride == 1 and cin == c else y
            outs.append(x)
            cin, i = c, i + 1
    outs.append(cbr(x, "features.18"))
    return outs


def test_loaded_encoder_reproduces_a_plain_torch_mobilenetv2(state):
    enc = create_encoder("mobilenet_v2", include_head=True).eval()
    enc.load_state_dict(state, strict=True)  # every key of the file, by name and shape
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = reference_features(state, x)
        got = enc(x)
    assert len(ref) == 19
    for stage, block in zip(got, (1, 3, 6, 13, 18)):
        assert stage.shape == ref[block].shape
        torch.testing.assert_close(stage, ref[block], atol=1e-4, rtol=1e-4)
    # output stride 16 (DeepLab): the same weights, the blocks up to 1/16 unchanged
    enc16 = create_encoder("mobilenet_v2", output_stride=16).eval()
    enc16.load_state_dict({k: v for k, v in state.items() if not k.startswith("classifier")}, strict=True)
    with torch.no_grad():
        got16 = enc16(x)
    torch.testing.assert_close(got16[3], ref[13], atol=1e-4, rtol=1e-4)
    assert got16[4].shape[-2:] == got16[3].shape[-2:]


def test_imagenet_classifier_recognises_the_bsds_airplane(state, data_dir):
    """The file's own classifier on BSDS500 val image 3096 (an airliner in the sky), resized to 256 and
    centre-cropped to 224 with ImageNet normalisation: its top classes are the aircraft classes."""
    path = data_dir / "bsds500" / "images" / "val" / "3096.jpg"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    im = Image.open(path).convert("RGB")
    s = 256 / min(im.size)
    im = im.resize((round(im.size[0] * s), round(im.size[1] * s)), Image.BILINEAR)
    left, top = (im.size[0] - 224) // 2, (im.size[1] - 224) // 2
    x = torch.from_numpy(np.array(im.crop((left, top, left + 224, top + 224)))).permute(2, 0, 1).float() / 255
    x = (x - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    enc = create_encoder("mobilenet_v2", include_head=True).eval()
    enc.load_state_dict(state, strict=True)
    with torch.no_grad():
        p = enc.classify(x[None]).softmax(1)[0]
    top = p.topk(3)
    aircraft = {404, 895, 908}  # airliner, warplane, wing
    assert set(top.indices.tolist()) == aircraft and float(top.values.sum()) > 0.9


@pytest.mark.parametrize("name", ["unet", "deeplabv3plus"])
def test_unet_and_deeplab_load_imagenet_by_name_and_by_path(name, mbv2_file, state, monkeypatch):
    monkeypatch.setenv("SEGLAB_WEIGHTS", str(mbv2_file.parent))
    by_name = create(name, 11, encoder="mobilenet_v2", encoder_weights="imagenet")
    by_path = create(name, 11, encoder="mobilenet_v2", encoder_weights=str(mbv2_file))
    for k, v in by_name.encoder.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(v, state[k]), k
            assert torch.equal(by_path.encoder.state_dict()[k], v)
    assert "encoder_weights" not in by_name.seglab_config  # the weights travel in the checkpoint
    gray = create(name, 2, encoder="mobilenet_v2", in_channels=1, encoder_weights=str(mbv2_file))
    torch.testing.assert_close(gray.encoder.features[0][0].weight, state["features.0.0.weight"].sum(1, keepdim=True))


def test_missing_and_wrong_files_give_one_line_errors(tmp_path, mbv2_file, monkeypatch):
    monkeypatch.setenv("SEGLAB_WEIGHTS", str(tmp_path))
    with pytest.raises(InputFileError, match=r"mobilenet_v2-b0353104\.pth: no such file; download https://") as e:
        create("unet", 3, encoder="mobilenet_v2", encoder_weights="imagenet")
    assert "\n" not in str(e.value)
    (tmp_path / FILE).write_bytes(b"not the official file")
    with pytest.raises(InputFileError, match="sha256 does not match"):
        imagenet_file("mobilenet_v2")
    with pytest.raises(InputFileError, match="no such encoder weights file"):
        create("unet", 3, encoder="mobilenet_v2", encoder_weights=str(tmp_path / "nope.pth"))
    wrong = tmp_path / "resnet.pth"
    torch.save(create_encoder("resnet18").state_dict(), wrong)
    with pytest.raises(InputFileError, match="keys do not fit the MobileNetV2 encoder") as e:
        create("unet", 3, encoder="mobilenet_v2", encoder_weights=str(wrong))
    assert "\n" not in str(e.value)
    with pytest.raises(ParameterError, match="needs a model with a classifier encoder"):
        create("unet", 3, encoder_weights=str(mbv2_file))
    with pytest.raises(ParameterError, match="no official ImageNet weights known for encoder 'mit_b0'"):
        imagenet_file("mit_b0")


def test_a_renamed_copy_of_the_official_file_passes_the_checksum(tmp_path, mbv2_file, monkeypatch):
    shutil.copy(mbv2_file, tmp_path / FILE)
    monkeypatch.setenv("SEGLAB_WEIGHTS", str(tmp_path))
    assert imagenet_file("mobilenet_v2") == tmp_path / FILE
