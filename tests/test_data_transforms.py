"""Augmentation: image and target stay aligned; padding is ignored; options are validated."""
import numpy as np
import pytest
import torch

from seglab.data.transforms import build_transforms
from seglab.engine.sampling import AugmentedSet
from seglab.errors import ParameterError


def _blocks(h=64, w=80):
    t = np.zeros((h, w), np.int64)
    t[:, w // 2:] = 1
    t[h // 2:, :w // 4] = 2
    img = np.stack([t * 100, 50 + 0 * t, 200 - t * 60], -1).astype(np.uint8)
    return img, t


@pytest.mark.parametrize("cfg", [
    {"hflip": 1.0, "vflip": 1.0},
    {"rotate": 30, "scale": [0.6, 1.6], "crop": [48, 48]},
    {"elastic": 1.0, "elastic_alpha": 30, "elastic_sigma": 5, "rotate90": True, "border": "reflect"},
])
def test_image_and_target_stay_aligned(cfg):
    img, t = _blocks()
    p = build_transforms(cfg, train=True, mean=(0, 0, 0), std=(1 / 255,) * 3)  # keeps pixel values
    for seed in range(4):
        p.compose.set_random_seed(seed)
        out = p(image=img, mask=t)
        x, y = out["image"].numpy(), out["mask"].numpy()
        valid = y != 255
        assert valid.mean() > 0.5
        # the label implied by the red channel (0, 100, 200) equals the target at >= 97 % of the pixels
        implied = np.rint(x[0] / 100.0)
        assert (implied[valid] == y[valid]).mean() > 0.97


def test_padding_gets_ignore_label_and_exact_flip():
    img, t = _blocks(20, 24)
    p = build_transforms({"crop": [32, 40]}, train=True, ignore_index=255, mean=(0, 0, 0), std=(1, 1, 1))
    out = p(image=img, mask=t)
    assert tuple(out["mask"].shape) == (32, 40) and tuple(out["image"].shape) == (3, 32, 40)
    assert (out["mask"] == 255).sum() == 32 * 40 - 20 * 24
    assert out["mask"].dtype == torch.int64
    f = build_transforms({"hflip": 1.0}, train=True, mean=(0, 0, 0), std=(1, 1, 1))(image=img, mask=t)
    np.testing.assert_array_equal(f["mask"].numpy(), t[:, ::-1])


def test_eval_pipeline_only_resizes_and_normalises():
    img, t = _blocks()
    p = build_transforms({"crop": [16, 16], "hflip": 1.0, "resize": [32, 40]}, train=False,
                         mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    out = p(image=img, mask=t)
    assert tuple(out["mask"].shape) == (32, 40)
    np.testing.assert_allclose(out["image"][1].numpy(), (50 / 255 - 0.5) / 0.25, atol=1e-5)


def test_augmentation_is_seeded_by_epoch_and_index():
    from seglab.data import open_dataset

    ds = open_dataset(".", "synthetic", "train", n=2, size=32)
    p = build_transforms({"rotate": 40, "scale": [0.5, 2], "crop": [24, 24], "color_jitter": 0.3}, train=True)
    a, b = AugmentedSet(ds, p, seed=1), AugmentedSet(ds, p, seed=1)
    x1, y1 = a[(1, 3)]
    b[(0, 0)]  # other samples in between change nothing
    x2, y2 = b[(1, 3)]
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(a[(1, 4)][0], x1)


def test_bad_options():
    with pytest.raises(ParameterError, match="unknown augment option 'flip'"):
        build_transforms({"flip": 0.5}, train=True)
    with pytest.raises(ParameterError, match="augment.scale"):
        build_transforms({"scale": [2, 1]}, train=True)
    with pytest.raises(ParameterError, match="augment.border"):
        build_transforms({"border": "wrap"}, train=True)
