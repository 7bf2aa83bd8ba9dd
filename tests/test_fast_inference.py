"""Fast CPU inference: BatchNorm folding against the unfolded network, the prepared network against the
plain eager one (float32: <= 1e-4 relative; bfloat16: <= 5e-2 relative and >= 95 % equal labels on a random
network), the bfloat16 fallback on CPUs without it, the torch.compile fallback and the predictor; the float32
ends of the bfloat16 path (the classifier writes float32 scores, MobileNetV2's first blocks run float32,
``keep_fp32`` checked, the caller's model never wrapped)."""
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seglab.engine import fast
from seglab.engine.fast import prepare, resolve_precision
from seglab.errors import ParameterError
from seglab.models import create
from seglab.models.fuse import FoldError, fold_batchnorm


def _randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                m.weight.copy_(1 + 0.2 * torch.randn(n, generator=g))
                m.bias.copy_(0.2 * torch.randn(n, generator=g))
    return model.eval()


class Named(nn.Module):
    """A ResNet-style block (attributes conv1 / bn1 ..., a transposed conv + BN, a BN after a conv with bias)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.up, self.bn3 = nn.ConvTranspose2d(8, 4, 2, stride=2), nn.BatchNorm2d(4)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)) + y)
        return self.bn3(self.up(y))


class SharedOutput(nn.Module):
    """A convolution whose output is also used un-normalised: folding its BatchNorm would be wrong."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


def test_fold_batchnorm_equals_the_unfolded_network():
    model = _randomise_bn(Named())
    x = torch.randn(2, 3, 20, 18)
    folded, n = fold_batchnorm(model)
    assert n == 3 and not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 3  # the original is untouched
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, kwargs", [("unet", dict(base_width=8, depth=2)), ("segnet_basic", {}),
                                          ("deeplabv3plus", dict(encoder="mobilenet_v2"))])
def test_fold_batchnorm_on_registered_models(name, kwargs):
    torch.manual_seed(0)
    model = _randomise_bn(create(name, 5, **kwargs))
    count = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    folded, n = fold_batchnorm(model)
    assert n == count > 0
    x = torch.randn(1, 3, 48, 40)
    with torch.no_grad():
        ref, got = model(x), folded(x)
    assert float((ref - got).abs().max()) <= 1e-5 * max(1.0, float(ref.abs().max()))


def test_fold_refuses_a_shared_convolution_output_and_restores_the_network():
    model = _randomise_bn(SharedOutput())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(FoldError, match="changed the output"):
        fold_batchnorm(model, inplace=True)
    assert isinstance(model.bn, nn.BatchNorm2d)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    with pytest.warns(UserWarning, match="BatchNorm not folded"):
        f = prepare(model, precision="fp32")
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(f(x), model(x))


@pytest.mark.parametrize("name, kwargs", [("unet", dict(base_width=8, depth=2)),
                                          ("deeplabv3plus", dict(encoder="mobilenet_v2")),
                                          ("patch_classifier", {}), ("segformer", {})])
def test_prepared_network_equals_the_eager_one(name, kwargs):
    torch.manual_seed(0)
    model = _randomise_bn(create(name, 4, **kwargs))
    x = torch.randn(1, 3, 64, 56, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref = model(x)
        scale = max(1.0, float(ref.abs().max()))
        f32 = prepare(model, precision="fp32")
        got = f32(x)
        assert got.dtype == torch.float32 and got.shape == ref.shape
        assert float((got - ref).abs().max()) <= 1e-4 * scale, "float32 path: <= 1e-4 relative"
        assert f32.info["channels_last"] and f32.info["precision"] == "fp32"
        if fast.bf16_supported():
            b16 = prepare(model, precision="bf16")
            assert b16.info["precision"] == "bf16"
            got = b16(x)
            assert got.dtype == torch.float32
            assert float((got - ref).abs().max()) <= 5e-2 * scale
            assert float((got.argmax(1) == ref.argmax(1)).float().mean()) >= 0.95


def test_bf16_request_falls_back_with_one_note_on_a_cpu_without_it(monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert not fast.bf16_supported()
    assert resolve_precision("auto") == ("fp32", None)
    prec, note = resolve_precision("bf16")
    assert prec == "fp32" and "no native bfloat16" in note
    model = create("unet", 3, base_width=8, depth=2)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        f = prepare(model, precision="bf16")
    assert f.info["precision"] == "fp32" and len(f.info["notes"]) == 1 and len(seen) == 1
    x = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(f(x), model.eval()(x), rtol=1e-4, atol=1e-5)


def test_bf16_needs_the_cpu_flag(monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(fast, "cpu_flags", lambda: frozenset({"avx512f"}))
    assert not fast.bf16_supported()
    monkeypatch.setattr(fast, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert fast.bf16_supported() and resolve_precision("auto") == ("bf16", None)
    assert resolve_precision("fp32") == ("fp32", None)


def test_bad_precision_is_refused():
    with pytest.raises(ParameterError, match="precision"):
        resolve_precision("fp16")


def test_compile_failure_falls_back_to_eager(monkeypatch):
    def broken(*args, **kwargs):
        def run(x):
            raise RuntimeError("no compiler here")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    model = create("unet", 3, base_width=8, depth=2)
    f = prepare(model, precision="fp32", compile=True)
    assert f.info["compiled"]
    x = torch.randn(1, 3, 32, 32)
    with pytest.warns(UserWarning, match="torch.compile failed"), torch.inference_mode():
        y = f(x)
    assert not f.info["compiled"] and any("torch.compile failed" in n for n in f.info["notes"])
    with torch.inference_mode():
        torch.testing.assert_close(y, model.eval()(x), rtol=1e-4, atol=1e-5)


def test_dilated_max_equals_max_pool():
    from seglab.models.patch_classifier import dilated_max3

    x = torch.randn(2, 3, 30, 27)
    for d in (1, 2, 4):
        assert torch.equal(dilated_max3(x, d), F.max_pool2d(x, 3, 1, dilation=d))


def test_predictor_fast_path_equals_the_plain_network():
    from seglab.data.base import DatasetInfo
    from seglab.engine.checkpoint import Trained
    from seglab.predictors.semantic import SemanticPredictor

    torch.manual_seed(0)
    model = _randomise_bn(create("unet", 3, base_width=8, depth=2))
    info = DatasetInfo("t", ("a", "b", "c"), ((0, 0, 0), (255, 0, 0), (0, 255, 0)))
    trained = Trained(model, info, [0.5] * 3, [0.25] * 3, {}, Path("t.pt"))
    image = np.random.default_rng(0).integers(0, 256, (37, 45, 3), dtype=np.uint8)
    plain = SemanticPredictor(trained, precision="fp32", fuse=False, channels_last=False)
    quick = SemanticPredictor(trained, precision="fp32")
    count = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert plain.fast.info["fused"] == 0 and quick.fast.info["fused"] == count > 0
    np.testing.assert_allclose(quick.predict_proba(image), plain.predict_proba(image), atol=1e-5)
    assert quick.predict(image).shape == (37, 45)


# ------------------------------------------------------------------ bfloat16 with float32 ends
@pytest.fixture
def bf16_cpu(monkeypatch):
    """Serve bfloat16 whatever the CPU (autocast emulates it where it is not native: slower, same numbers)."""
    monkeypatch.setattr(fast, "bf16_supported", lambda: True)


def test_bf16_keeps_the_head_in_float32(bf16_cpu):
    torch.manual_seed(0)
    model = _randomise_bn(create("unet", 4, base_width=8, depth=2))
    f = prepare(model, precision="bf16")
    assert f.info["precision"] == "bf16" and f.info["fp32_modules"] == ["head"]
    head = f.model.head
    assert isinstance(head, fast.Float32) and head.module.weight.dtype == torch.float32
    convs = [m for m in f.model.modules() if isinstance(m, nn.Conv2d) and m is not head.module]
    assert convs and all(m.weight.dtype == torch.bfloat16 for m in convs)
    assert f.info["bf16_weights"] == len([m for m in f.model.modules()
                                          if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]) - 1
    seen = []
    head.register_forward_hook(lambda mod, args, out: seen.append((args[0].dtype, out.dtype)))
    x = torch.randn(1, 3, 40, 36, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref, got, all16 = model(x), f(x), prepare(model, precision="bf16", keep_fp32=())(x)
    assert seen == [(torch.bfloat16, torch.float32)]  # bfloat16 features in, float32 scores out
    # the scores are not rounded to bfloat16 (they are with the whole network under autocast)
    assert not torch.equal(got, got.bfloat16().float())
    assert torch.equal(all16, all16.bfloat16().float())
    assert got.dtype == torch.float32 and got.shape == ref.shape
    assert float((got - ref).abs().max()) <= 5e-2 * max(1.0, float(ref.abs().max()))
    assert not any(isinstance(m, fast.Float32) for m in model.modules())  # the caller's model is untouched


def test_float32_wrapper_inside_autocast():
    conv = nn.Conv2d(3, 2, 1)
    wrapped = fast.Float32(conv)
    x = torch.randn(1, 3, 5, 5).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert conv(x.float()).dtype == torch.bfloat16
        y = wrapped(x)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, conv(x.float()))


def test_float32_ends_per_model():
    assert fast.float32_ends(create("unet", 3, base_width=8, depth=2)) == ("head",)
    assert fast.float32_ends(create("segnet_basic", 3)) == ("head",)
    assert fast.float32_ends(create("patch_classifier", 3)) == ("encoder.classifier",)
    assert fast.float32_ends(nn.Sequential(nn.Conv2d(3, 2, 1))) == ()
    # MobileNetV2's first blocks stay float32 too (they decided most bfloat16 label changes on CamVid)
    first = tuple(f"encoder.features.{i}" for i in range(4))
    assert fast.float32_ends(create("unet", 3, encoder="mobilenet_v2", base_width=4)) == first + ("head",)


def test_bf16_mobilenet_first_blocks_run_float32(bf16_cpu):
    torch.manual_seed(0)
    model = _randomise_bn(create("unet", 3, encoder="mobilenet_v2", base_width=4))
    f = prepare(model, precision="bf16")
    assert f.info["fp32_modules"] == [f"encoder.features.{i}" for i in range(4)] + ["head"]
    feats = f.model.encoder.features
    assert all(p.dtype == torch.float32 for i in range(4) for p in feats[i].parameters())
    assert all(m.weight.dtype == torch.bfloat16 for m in feats[4:].modules() if isinstance(m, nn.Conv2d))
    seen = []
    feats[3].register_forward_hook(lambda mod, args, out: seen.append(out.dtype))
    feats[4].register_forward_hook(lambda mod, args, out: seen.append(out.dtype))
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref, got = model(x), f(x)
    assert seen == [torch.float32, torch.bfloat16]
    assert float((got - ref).abs().max()) <= 5e-2 * max(1.0, float(ref.abs().max()))


def test_keep_fp32_names_checked_and_unused_on_float32(bf16_cpu):
    model = create("unet", 3, base_width=8, depth=2)
    with pytest.raises(ParameterError, match="keep_fp32.*'nohead'"):
        prepare(model, precision="bf16", keep_fp32=["nohead"])
    f = prepare(model, precision="fp32", keep_fp32=["nohead"])  # float32 throughout: nothing to keep
    assert f.info["fp32_modules"] == []
    plain = prepare(model, precision="bf16", fuse=False, channels_last=False)
    assert plain.info["fp32_modules"] == ["head"] and plain.model is not model
    assert not any(isinstance(m, fast.Float32) for m in model.modules())
