"""Lightning's ``precision`` for a run: float32 on CPU by default, bfloat16 mixed precision on request where
the CPU has bfloat16 arithmetic (AVX512-BF16 / AMX; about twice the float32 training rate of U-Net /
DeepLabV3+ on MobileNetV2 here, see ``docs/results/training_throughput.md``), float32 with one note where it
has not (emulated bfloat16 is slower than float32 and gains nothing)."""
from __future__ import annotations

import torch


def cpu_bf16_supported() -> bool:
    """Whether this CPU runs bfloat16 matrix products natively (oneDNN's check: AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def resolve_precision(p: str, accelerator: str, note=print) -> str:
    """The precision to give Lightning for ``trainer.precision`` ``p`` on ``accelerator``."""
    on_gpu = accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
    if p == "auto":
        if on_gpu:
            return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
        return "32-true"
    if p.startswith("bf16") and not on_gpu and not cpu_bf16_supported():
        note(f"note: trainer.precision {p} needs a CPU with bfloat16 arithmetic (AVX512-BF16 or AMX); this one "
             "has none, training in float32 (32-true) instead")
        return "32-true"
    return p
