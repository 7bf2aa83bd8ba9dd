"""The machine line that every results page quotes."""
from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def gemm_peak(threads: int, size: int = 3072, reps: int = 9) -> dict:
    """The machine's measured peak: median time of a ``size x size`` matrix product in float32 and bfloat16
    on ``threads`` threads (interleaved), as GFLOP/s (multiply-add = 2), with the load average."""
    import os
    import statistics
    import time

    import torch

    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(size, size, generator=g), torch.randn(size, size, generator=g)
    pairs = {"fp32": (a, b), "bf16": (a.bfloat16(), b.bfloat16())}
    times: dict[str, list[float]] = {k: [] for k in pairs}
    for x, y in pairs.values():
        torch.mm(x, y)
    for _ in range(reps):
        for k, (x, y) in pairs.items():
            t = time.perf_counter()
            torch.mm(x, y)
            times[k].append(time.perf_counter() - t)
    flop = 2 * size ** 3
    return {"size": size, "threads": threads, "times_s": times, "load": os.getloadavg(),
            "gflops": {k: flop / statistics.median(v) / 1e9 for k, v in times.items()}}
