"""The cost of a network: its parameter count and the GFLOPs of one forward pass.

FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode` (a multiply-add counts 2;
convolutions, transposed convolutions and matrix products; element-wise operations are not counted).
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

SIZE = 512
NUM_CLASSES = 21


def model_cost(name: str, *, num_classes: int = NUM_CLASSES, size: int = SIZE, **kwargs) -> tuple[int, float]:
    """(parameters, GFLOPs of one ``1 x 3 x size x size`` forward pass) of model ``name``.

    The model is built on the ``meta`` device (shapes only, nothing computed) when its code allows it,
    else on the CPU.
    """
    from . import create

    def run(device: str):
        with torch.device(device):
            model = create(name, num_classes, **kwargs).eval()
            x = torch.zeros(1, 3, size, size)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
        return sum(p.numel() for p in model.parameters()), counter.get_total_flops() / 1e9

    try:
        return run("meta")
    except (RuntimeError, NotImplementedError):  # an op without a meta kernel, or a data-dependent step
        return run("cpu")
