"""Fast CPU inference: a trained network prepared once (BatchNorm folded, channels-last, bfloat16 autocast
where the CPU computes in it natively, optionally ``torch.compile``), then run many times.

Each step keeps the network's function: BatchNorm folding (:mod:`seglab.models.fuse`) and channels-last
(NHWC, the layout oneDNN's convolutions use natively, so no reordering around each convolution) change only
rounding; bfloat16 autocast runs convolutions and matrix products in bfloat16 with float32 accumulation
(Kalamkar et al., "A Study of BFLOAT16 for Deep Learning Training", 2019) and everything else in float32, so
logits move by ~1e-2 relative and arg-max labels change only at near-ties (the results page reports the
agreement).
bfloat16 is used only where the CPU has native instructions for it (``avx512_bf16`` or AMX); elsewhere it
is emulated and slower, so ``precision="auto"`` keeps float32 and an explicit ``"bf16"`` request falls back
to float32 with one note.

The precision-sensitive ends of the network stay in float32 under bfloat16 (:func:`float32_ends`):

* the classifier (the layer that writes the class scores) and what follows it (the upsampling of the scores
  to the input size). Under autocast a convolution *writes* bfloat16, so the class scores themselves would
  be rounded to 8 significant bits (steps of 1/16 at |score| ~ 10) and bilinearly interpolated in bfloat16;
  the classifier is a small share of the work (a 1 x 1 convolution to K classes);
* the first blocks of an encoder that names them (``float32_modules``): MobileNetV2's stem and depthwise
  blocks at 1/2 and 1/4 resolution (9-term sums, no averaging of rounding errors) caused most label changes
  on a trained CamVid U-Net, for ~4 % of its FLOPs.

Pixel agreement with float32 on real CamVid test images and the speed against ONNX Runtime are on
docs/results/inference.md.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import time
import warnings
from pathlib import Path

import torch
from torch import nn

from ..errors import ParameterError

PRECISIONS = ("auto", "fp32", "bf16")
_HALF = (torch.bfloat16, torch.float16)


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def bf16_supported() -> bool:
    """True when this CPU computes bfloat16 natively (``avx512_bf16`` or ``amx_bf16``) and torch's kernels
    use it (``torch.backends.cpu.get_cpu_capability()`` reports AVX-512 or AMX)."""
    cap = str(torch.backends.cpu.get_cpu_capability()).upper()
    flags = cpu_flags()
    return (cap.startswith("AVX512") or "AMX" in cap) and bool({"avx512_bf16", "amx_bf16"} & flags)


def resolve_precision(precision: str, device: str = "cpu") -> tuple[str, str | None]:
    """``(precision used, note or None)`` for a request of ``"auto"``, ``"fp32"`` or ``"bf16"``: ``auto`` is
    bf16 where :func:`bf16_supported`, else fp32; a ``bf16`` request this CPU cannot serve falls back to
    fp32 with a note."""
    if precision not in PRECISIONS:
        raise ParameterError(f"parameter 'precision' must be one of {list(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return "fp32", None
    if str(device) != "cpu":
        return "fp32", (None if precision == "auto" else
                        f"bfloat16 is only used on the CPU; running float32 on {device}")
    if bf16_supported():
        return "bf16", None
    if precision == "auto":
        return "fp32", None
    return "fp32", ("this CPU has no native bfloat16 (no avx512_bf16 / amx_bf16; torch capability "
                    f"{torch.backends.cpu.get_cpu_capability()}): running float32")


def _to_float32(x):
    if isinstance(x, torch.Tensor):
        return x.float() if x.dtype in _HALF else x
    if isinstance(x, (list, tuple)):
        return type(x)(_to_float32(v) for v in x)
    if isinstance(x, dict):
        return {k: _to_float32(v) for k, v in x.items()}
    return x


class Float32(nn.Module):
    """``module`` run in float32 inside a bfloat16 autocast region: its bfloat16 inputs are widened to float32
    and autocast is off while it runs, so it computes and returns float32."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        with torch.autocast("cpu", enabled=False):
            return self.module(*_to_float32(args), **_to_float32(kwargs))


def float32_ends(model: nn.Module) -> tuple[str, ...]:
    """Names of the submodules of ``model`` that the bfloat16 path keeps in float32.

    * The model's own ``float32_modules`` (seglab's semantic networks: ``("head",)``, the layer that writes
      the class scores, which in FCN is also the learned score upsampling; the patch classifier: its 1 x 1
      classifier), else ``head`` / ``classifier`` where present. What follows them in the model's
      ``forward`` (bilinear upsampling of the scores, cropping) then receives float32 scores and stays
      float32.
    * the encoder's own ``float32_modules`` (MobileNetV2: its blocks at 1/2 and 1/4 resolution, whose
      depthwise convolutions decided most bfloat16 label changes on a trained CamVid U-Net).

    Names the network lacks, and modules without parameters, are skipped."""
    names = list(getattr(model, "float32_modules", ("head", "classifier")))
    encoder = getattr(model, "encoder", None)
    if isinstance(encoder, nn.Module):
        names[:0] = [f"encoder.{n}" for n in getattr(encoder, "float32_modules", ())]
    out = []
    for name in names:
        try:
            mod = model.get_submodule(name)
        except AttributeError:
            continue
        if any(True for _ in mod.parameters()):
            out.append(name)
    return tuple(out)


def _keep_float32(net: nn.Module, names) -> list[str]:
    """Wrap the named submodules of ``net`` in :class:`Float32` (in place); returns the names wrapped."""
    done = []
    for name in names:
        try:
            mod = net.get_submodule(name)
        except AttributeError:
            raise ParameterError(f"parameter 'keep_fp32': the network has no submodule {name!r}") from None
        if isinstance(mod, Float32) or mod is net:
            continue
        parent_name, _, attr = name.rpartition(".")
        setattr(net.get_submodule(parent_name) if parent_name else net, attr, Float32(mod))
        done.append(name)
    return done


class FastModel(nn.Module):
    """``model`` run channels-last and (``precision="bf16"``) under bfloat16 autocast; float32 logits out.

    ``info`` records what was applied: ``precision``, ``fused`` (BatchNorms folded), ``channels_last``,
    ``compiled``, ``compile_s`` and ``notes`` (fallbacks taken)."""

    def __init__(self, model: nn.Module, precision: str, channels_last: bool, info: dict):
        super().__init__()
        self.model = model
        self.precision = precision
        self.channels_last = channels_last
        self.info = info
        self._compiled = None

    def _context(self):
        if self.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _run(self, fn, x):
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._context():
            y = fn(x)
        return y.float() if isinstance(y, torch.Tensor) else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._compiled is not None:
            try:
                t0 = time.perf_counter()
                y = self._run(self._compiled, x)
                self.info["compile_s"] = self.info.get("compile_s") or time.perf_counter() - t0
                return y
            except Exception as exc:  # a graph torch.compile cannot handle: stay eager from now on
                self._compiled = None
                self.info["compiled"] = False
                _note(self.info, f"torch.compile failed ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); "
                                 "running eagerly")
        return self._run(self.model, x)


_LOW = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)


def _store_bf16_weights(fast: FastModel) -> int:
    """Keep the weights of convolutions and linear layers in bfloat16, so autocast does not convert them
    again at every call (a quarter of VGG-16's time); returns how many modules were converted. Autocast
    rounds them to these very values anyway, so the output must stay bit-identical on a probe; if it does
    not (a weight used by an op outside autocast) or anything fails, the float32 weights are restored."""
    from ..models.fuse import probe_input

    kept = {id(m) for w in fast.model.modules() if isinstance(w, Float32) for m in w.modules()}
    mods = [m for m in fast.model.modules() if isinstance(m, _LOW) and id(m) not in kept]
    if not mods:
        return 0
    probe = probe_input(fast.model)
    saved = [(m, m.weight, m.bias) for m in mods]
    try:
        with torch.no_grad():
            ref = fast(probe)
            for m in mods:
                m.weight = nn.Parameter(m.weight.detach().bfloat16(), requires_grad=False)
                if m.bias is not None:
                    m.bias = nn.Parameter(m.bias.detach().bfloat16(), requires_grad=False)
            same = torch.equal(fast(probe), ref)
    except Exception:  # a kernel without a bfloat16 weight path
        same = False
    if not same:
        for m, w, b in saved:
            m.weight, m.bias = w, b
        return 0
    return len(mods)


def _note(info: dict, text: str) -> None:
    info.setdefault("notes", []).append(text)
    warnings.warn(text, stacklevel=3)


def prepare(model: nn.Module, *, precision: str = "auto", fuse: bool = True, channels_last: bool = True,
            compile: bool = False, device: str = "cpu", keep_fp32=None) -> FastModel:
    """A :class:`FastModel` for inference with ``model`` (which is left untouched: the fast copy shares
    nothing with it when anything is changed).

    ``fuse`` folds BatchNorm into the convolutions (:func:`seglab.models.fuse.fold_batchnorm`, checked on a
    probe; on a mismatch the network stays unfused, with a note); ``channels_last`` runs convolutions in
    NHWC; ``precision`` see :func:`resolve_precision`; under bfloat16, ``keep_fp32`` names the submodules
    that stay in float32 (default :func:`float32_ends`: the classifier and the score upsampling; ``()``: none,
    the whole network under autocast; recorded in ``info["fp32_modules"]``); ``compile`` wraps the network in
    ``torch.compile``
    (inductor, weights frozen; compiled at the first call, whose time is ``info["compile_s"]``, and cached
    by inductor on disk for later processes); any failure falls back to eager with a note.
    """
    prec, note = resolve_precision(precision, device)
    info: dict = {"precision": prec, "requested_precision": precision, "fused": 0, "channels_last": False,
                  "compiled": False, "fp32_modules": [], "notes": []}
    if note:
        _note(info, note)
    net = model.eval()
    if fuse or channels_last or compile:
        net = copy.deepcopy(net)
    if fuse:
        from ..models.fuse import FoldError, fold_batchnorm

        try:
            net, info["fused"] = fold_batchnorm(net, inplace=True)
        except FoldError as exc:
            _note(info, f"BatchNorm not folded: {exc}")
    cl = bool(channels_last) and str(device) == "cpu"
    if cl:
        net = net.to(memory_format=torch.channels_last)
        info["channels_last"] = True
    for p in net.parameters():
        p.requires_grad_(False)
    if prec == "bf16":
        keep = float32_ends(net) if keep_fp32 is None else tuple(keep_fp32)
        if keep and not (fuse or channels_last or compile):
            net = copy.deepcopy(net)  # the wrappers must not land in the caller's model
        info["fp32_modules"] = _keep_float32(net, keep)
    fast = FastModel(net, prec, cl, info)
    if prec == "bf16":
        info["bf16_weights"] = _store_bf16_weights(fast)
    if compile:
        try:
            import torch._inductor.config as inductor_config

            inductor_config.freezing = True
            fast._compiled = torch.compile(net, dynamic=False)
            info["compiled"] = True
        except Exception as exc:
            _note(info, f"torch.compile unavailable ({type(exc).__name__}); running eagerly")
    return fast
