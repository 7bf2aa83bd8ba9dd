"""Engine pieces without training: configs, schedules, samplers, tiled inference and TTA."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from seglab.engine.config import DEFAULTS, load_config, resolve_root
from seglab.engine.inference import predict_proba, sliding_window, window
from seglab.engine.sampling import EpochSampler
from seglab.engine.schedule import lr_factor
from seglab.errors import InputFileError, ParameterError


def test_file_and_set_overrides(tmp_path):
    f = tmp_path / "e.yaml"
    f.write_text("name: x\nmodel: {name: segnet_basic}\ntrainer: {max_epochs: 3}\naugment: {crop: [8, 8]}\n")
    cfg = load_config(f, {"trainer.max_epochs": "5", "augment.crop": "[16, 24]", "model.options.depth": "2",
                          "data.root": "$SEGLAB_DATA/camvid", "loss.class_weights": "null"})
    assert cfg["name"] == "x" and cfg["model"]["name"] == "segnet_basic"
    assert cfg["trainer"]["max_epochs"] == 5 and cfg["augment"]["crop"] == [16, 24]
    assert cfg["model"]["options"] == {"depth": 2} and cfg["loss"]["class_weights"] is None
    assert cfg["optimizer"] == DEFAULTS["optimizer"]  # untouched sections keep their defaults
    assert resolve_root(cfg["data"]["root"]).name == "camvid" and "$" not in str(resolve_root(cfg["data"]["root"]))


@pytest.mark.parametrize("text,sets,msg", [
    ("trainer: {max_epoch: 3}\n", {}, "unknown config key 'trainer.max_epoch'"),
    ("", {"model.encoderr": "x"}, "--set model.encoderr: unknown config key 'model.encoderr'"),
    ("", {"nope.x": "1"}, "unknown config key 'nope'"),
    ("trainer: 3\n", {}, "'trainer' must be a section"),
    ("model: [1, 2\n", {}, "not valid YAML"),
])
def test_bad_keys_give_one_line_errors(tmp_path, text, sets, msg):
    f = tmp_path / "e.yaml"
    f.write_text(text)
    with pytest.raises((ParameterError, InputFileError)) as e:
        load_config(f, sets)
    assert msg in str(e.value) and "\n" not in str(e.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(InputFileError, match="no such config file"):
        load_config(tmp_path / "none.yaml")


def test_schedules_match_their_formulas():
    assert lr_factor(0, 100, name="poly", power=0.9) == 1.0
    assert lr_factor(50, 100, name="poly", power=0.9) == pytest.approx(0.5 ** 0.9)
    assert lr_factor(100, 100, name="poly") == 0.0
    assert lr_factor(25, 100, name="cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_factor(100, 100, name="cosine", min_factor=0.1) == pytest.approx(0.1)
    # linear warm-up from 0.1 over 10 steps, then the decay over the remaining 90
    assert lr_factor(0, 100, warmup_steps=10) == pytest.approx(0.1)
    assert lr_factor(5, 100, warmup_steps=10) == pytest.approx(0.55)
    assert lr_factor(55, 100, name="poly", power=1.0, warmup_steps=10) == pytest.approx(0.5)
    assert lr_factor(7, 10, name="constant") == 1.0
    with pytest.raises(ParameterError, match="schedule.name"):
        lr_factor(0, 10, name="step")


def test_distributed_sampler_splits_the_single_process_batches():
    one = [i for i, _ in EpochSampler(10, shuffle=True, seed=3)]
    ranks = [[i for i, _ in EpochSampler(10, shuffle=True, seed=3, rank=r, world=2)] for r in (0, 1)]
    b = 4  # global batch 4 = 2 per rank: step k's union equals the single-process batch k
    for k in range(2):
        assert sorted(one[k * b:(k + 1) * b]) == sorted(ranks[0][k * 2:(k + 1) * 2] + ranks[1][k * 2:(k + 1) * 2])
    s = EpochSampler(10, shuffle=True, seed=3)
    s.set_epoch(1)
    assert [i for i, _ in s] != one and {e for _, e in s} == {1}
    val = [[i for i, _ in EpochSampler(5, shuffle=False, seed=0, rank=r, world=2, pad=False)] for r in (0, 1)]
    assert sorted(val[0] + val[1]) == list(range(5))  # evaluation counts every image once


def test_window_is_positive_and_peaks_in_the_centre():
    for kind in ("gaussian", "cosine"):
        w = window(16, 20, kind)
        assert w.min() > 0 and w.max() <= 1 and w[8, 10] == w.max()
        assert w[0, 0] < 0.05
    with pytest.raises(ParameterError):
        window(4, 4, "box")


def test_sliding_window_equals_whole_image_for_a_pointwise_model():
    torch.manual_seed(0)
    model = nn.Conv2d(3, 4, 1).eval()
    x = torch.randn(2, 3, 37, 53)
    whole = torch.softmax(model(x), 1)
    for kind in ("gaussian", "cosine", "uniform"):
        tiled = sliding_window(model, x, (16, 20), overlap=0.5, kind=kind)
        torch.testing.assert_close(tiled, whole, atol=1e-6, rtol=1e-5)


def test_tiles_blend_smoothly_for_a_conv_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 5, padding=2), nn.ReLU(), nn.Conv2d(8, 3, 5, padding=2)).eval()
    x = torch.randn(1, 3, 64, 64)
    whole = torch.softmax(model(x), 1)
    tiled = sliding_window(model, x, 32, overlap=0.5)
    # zero padding at tile borders changes a 4-pixel band; the window down-weights it
    assert (tiled - whole).abs().mean() < 0.01


def test_flip_and_scale_tta():
    torch.manual_seed(0)
    model = nn.Conv2d(3, 2, 1).eval()
    x = torch.randn(1, 3, 16, 16)
    base = predict_proba(model, x)
    torch.testing.assert_close(predict_proba(model, x, flip=True), base)  # a 1x1 conv commutes with flips
    ms = predict_proba(model, x, scales=(0.5, 1.0, 2.0))
    assert ms.shape == base.shape and torch.allclose(ms.sum(1), torch.ones(1, 16, 16))
    with pytest.raises(ParameterError):
        predict_proba(model, x, scales=(0,))


def test_rotation_tta_makes_the_output_equivariant():
    """With ``flip`` and ``rotate`` the mean over the 8 symmetries of the square is exactly equivariant:
    a flipped or rotated input gives the flipped or rotated output, even for a model that is not."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, (1, 5), padding=(0, 2))).eval()
    x = torch.randn(1, 3, 12, 20)  # not square: rotated inputs are 20 x 12
    plain, d8 = predict_proba(model, x), predict_proba(model, x, flip=True, rotate=True)
    assert d8.shape == plain.shape and torch.allclose(d8.sum(1), torch.ones(1, 12, 20))
    assert not torch.allclose(predict_proba(model, torch.flip(x, dims=[-1])), torch.flip(plain, dims=[-1]), atol=1e-3)
    for t in (lambda a: torch.flip(a, dims=[-1]), lambda a: torch.flip(a, dims=[-2]),
              lambda a: torch.rot90(a, 1, dims=(-2, -1)), lambda a: torch.rot90(a, 3, dims=(-2, -1))):
        torch.testing.assert_close(predict_proba(model, t(x), flip=True, rotate=True), t(d8))
    rot4 = predict_proba(model, x, rotate=True)  # the 4 rotations alone: equivariant to rotations only
    torch.testing.assert_close(predict_proba(model, torch.rot90(x, 1, dims=(-2, -1)), rotate=True),
                               torch.rot90(rot4, 1, dims=(-2, -1)))
    pointwise = nn.Conv2d(3, 2, 1).eval()  # commutes with every symmetry: TTA changes nothing
    torch.testing.assert_close(predict_proba(pointwise, x, flip=True, rotate=True), predict_proba(pointwise, x))


def test_isbi_connectomics_of_a_stack():
    from seglab.engine.evaluate import connectomics

    t = np.ones((2, 20, 20), bool)
    t[:, 10, :] = False  # a membrane splits every slice into two cells
    perfect = connectomics(t, t.astype(np.float32), t)
    assert perfect["pixel_error"] == 0 and perfect["rand_error"] == pytest.approx(0, abs=1e-12)
    merged = np.ones_like(t)  # the membrane missed: the two cells merge
    m = connectomics(merged, merged.astype(np.float32), t)
    assert m["pixel_error"] == pytest.approx(20 / 400) and m["rand_error"] > 0.3
    assert m["v_rand_split"] == pytest.approx(1.0) and m["v_rand_merge"] < 0.7
    # a probability map whose best threshold recovers the membrane
    prob = np.where(t, 0.8, 0.3).astype(np.float32)
    assert connectomics(prob > 0.5, prob, t)["best_threshold"]["rand_error"] == pytest.approx(0, abs=1e-12)


def test_prediction_of_a_model_trained_on_resized_images_comes_back_at_full_size():
    from seglab.data.base import DatasetInfo
    from seglab.engine.checkpoint import Trained
    from seglab.engine.evaluate import predict_image

    model = nn.Conv2d(1, 2, 1).eval()
    info = DatasetInfo("x", ("a", "b"), ((0, 0, 0), (1, 1, 1)), in_channels=1)
    t = Trained(model, info, [0.5], [0.25], {"augment": {"resize": [12, 16]}}, None)
    rgb = np.random.default_rng(0).integers(0, 255, (30, 41, 3), dtype=np.uint8)
    p = predict_image(t, rgb, flip=True)  # RGB into a gray model: converted by luminance
    assert p.shape == (2, 30, 41) and np.allclose(p.sum(0), 1, atol=1e-5)


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_every_shipped_config_loads_and_builds_its_model(path):
    from seglab.data.registry import get_format
    from seglab.models import create

    cfg = load_config(path)
    get_format(cfg["data"]["format"])  # a registered data-set format
    m = cfg["model"]
    if cfg["task"] == "instance":  # Mask R-CNN: one Instances per image, in the image's pixels
        from seglab.data.base import DatasetInfo
        from seglab.engine.tasks.instance_module import build_instance_model

        info = DatasetInfo("x", ("background", "a", "b"), ((0, 0, 0), (1, 1, 1), (2, 2, 2)))
        with torch.no_grad():
            [found] = build_instance_model(cfg, info).eval()([torch.rand(3, 40, 52)])
        assert found.image_size == (40, 52) and found.masks.shape[1:] == (40, 52)
        return
    if cfg["task"] == "panoptic":  # Panoptic FPN: things and a class per pixel, in the image's pixels
        from seglab.data.base import DatasetInfo
        from seglab.engine.tasks.panoptic_module import build_panoptic_model

        info = DatasetInfo("x", ("background", "a"), ((0, 0, 0), (1, 1, 1)))
        with torch.no_grad():
            [found] = build_panoptic_model(cfg, info).eval()([torch.rand(3, 40, 52)])
        assert found.semantic.shape == (40, 52) and found.instances.image_size == (40, 52)
        return
    if cfg["task"] == "keypoint":  # Keypoint R-CNN (Instances with keypoints) or K heatmaps
        from seglab.data.base import DatasetInfo
        from seglab.engine.tasks.keypoint_module import build_keypoint_model

        info = DatasetInfo("x", ("background", "a"), ((0, 0, 0), (1, 1, 1)))
        meta = {"category": "a", "names": ["p", "q", "r"], "skeleton": [[1, 2]]}
        model = build_keypoint_model(cfg, info, meta, weights=False).eval()
        with torch.no_grad():
            out = model([torch.rand(3, 40, 52)]) if m["name"] == "keypoint_rcnn" else model(torch.randn(1, 3, 40, 52))
        if m["name"] == "keypoint_rcnn":
            assert out[0].image_size == (40, 52) and out[0].keypoints.shape[1:] == (3, 3)
        else:
            assert out.shape == (1, 3, 40, 52)
        return
    if cfg["task"] == "promptable":  # a SAM-family model: its image encoder's input size
        from seglab.models.sam.build import build_sam

        sam = build_sam(m["name"])
        assert sam.image_encoder is not None and sam.img_size > 0
        return
    model = create(m["name"], 3, encoder=m.get("encoder"), **(m.get("options") or {}))
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 40, 52)).shape == (1, 3, 40, 52)
