"""Tiled prediction of huge images (seglab.scale.huge): equal to untiled prediction when the halo covers the
receptive field, the TIFF written tile by tile, and its options checked."""
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from scipy import ndimage as ndi

from seglab.cli.main import main
from seglab.data.base import DatasetInfo, default_palette
from seglab.engine.checkpoint import Trained, load_trained
from seglab.engine.evaluate import predict_image
from seglab.errors import ParameterError
from seglab.models import create, save_checkpoint
from seglab.scale.huge import HugeFiles, ImageSource, core_boxes, exact_halo, receptive_radius, tile_probabilities

INFO = DatasetInfo("synthetic", ("background", "rectangle", "disc"), default_palette(3))


def _model(depth=2):
    torch.manual_seed(0)
    return create("unet", 3, base_width=4, depth=depth, variant="padded").eval()


def _image(h, w, seed=0):
    rng = np.random.default_rng(seed)
    return ndi.uniform_filter((rng.random((h, w, 3)) * 255).astype(np.uint8), (5, 5, 1))


class _Array:
    def __init__(self, a):
        self.a, self.shape = a, a.shape

    def read(self, y0, y1, x0, x1):
        return self.a[y0:y1, x0:x1]


def _stitched(trained, img, tile, halo):
    out = np.zeros((trained.info.num_classes,) + img.shape[:2], np.float32)
    for (y0, y1, x0, x1), p in tile_probabilities(trained, _Array(img), tile, halo):
        out[:, y0:y1, x0:x1] = p
    return out


def test_receptive_radius_of_a_unet():
    # two 3x3 convolutions per level, depth 2: 2 + 2 at full size, 2 * (2 + 2) at half, 4 * 2 at a quarter
    # (plus the up-convolutions' reach) -- the gradient sees 22 pixels; the halo rounds up to the stride 4
    assert receptive_radius(_model(2)) == 22 and exact_halo(_model(2)) == 24
    assert exact_halo(_model(3)) > exact_halo(_model(2))


def test_tiles_with_a_halo_equal_untiled_prediction():
    trained = Trained(_model(), INFO, [0.5] * 3, [0.25] * 3, {}, None)
    img = _image(150, 211)  # neither side a multiple of the tile or the stride
    untiled = predict_image(trained, img, tile=None, resize=None)
    halo = exact_halo(trained.model)
    tiled = _stitched(trained, img, (32, 48), halo)
    assert np.abs(tiled - untiled).max() < 1e-6
    assert np.array_equal(tiled.argmax(0), untiled.argmax(0))
    # without the halo the tile borders show: the comparison above can fail
    assert np.abs(_stitched(trained, img, (32, 48), 0) - untiled).max() > 1e-4
    assert sorted(core_boxes(5, 7, (2, 3)))[-1] == (4, 5, 6, 7)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", _model(),
                           extra={"info": INFO.to_dict(), "mean": [0.5] * 3, "std": [0.25] * 3, "train_config": {}})


def test_cli_writes_the_label_tiff_tile_by_tile(ckpt, tmp_path, capsys):
    img = _image(100, 130, seed=1)
    tifffile.imwrite(tmp_path / "big.tif", img)                     # uncompressed: read window by window
    Image.fromarray(_image(70, 50, seed=2)).save(tmp_path / "small.png")  # decoded whole
    assert ImageSource(tmp_path / "big.tif")._map is not None
    assert main(["predict", str(ckpt), str(tmp_path / "big.tif"), str(tmp_path / "small.png"), "-o",
                 str(tmp_path / "out"), "--huge", "--tile", "32"]) == 0
    trained = load_trained(ckpt)
    for name, image in (("big", img), ("small", np.asarray(Image.open(tmp_path / "small.png")))):
        with tifffile.TiffFile(tmp_path / f"out/{name}.tif") as tif:
            page = tif.pages[0]
            labels = page.asarray()
            assert page.is_tiled and page.tilewidth == 32 and page.photometric == 3  # palette
            assert np.array_equal(page.colormap[:, 1] // 257, INFO.palette[1])
        assert labels.shape == image.shape[:2] and labels.dtype == np.uint8
        assert np.array_equal(labels, predict_image(trained, image, tile=None, resize=None).argmax(0))
    assert not list((tmp_path / "out").glob(".*"))


def test_huge_options_are_checked(ckpt, tmp_path, capsys):
    Image.fromarray(_image(40, 40)).save(tmp_path / "a.png")
    base = ["predict", str(ckpt), str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--huge"]
    assert main(base + ["--tile", "40"]) == 2
    assert "--tile for huge images must be a positive multiple of 16" in capsys.readouterr().err
    assert main(base + ["--halo", "6"]) == 2
    assert "--halo must be a multiple of the network's stride 4" in capsys.readouterr().err
    assert main(base + ["--overlay"]) == 2
    assert "--overlay does not apply to --huge" in capsys.readouterr().err
    with pytest.raises(ParameterError, match="--tile"):
        HugeFiles(load_trained(ckpt), tmp_path, tile=(16, 20))
