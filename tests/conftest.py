import os
from pathlib import Path

import numpy as np
import pytest

# One intra-op thread per test process: pytest runs with -n 2 on 2 cores, and PyTorch with 2 threads
# per worker on busy cores was measured up to 200x slower on small convolutions. Set before torch loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")

DATA = Path(os.environ.get("SEGLAB_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared real data sets; tests that need them skip where they are absent."""
    if not DATA.is_dir():
        pytest.skip(f"real data sets not found at {DATA} (set SEGLAB_DATA)")
    return DATA


@pytest.fixture(scope="session")
def peers():
    """``benchmarks/peers.py``: the peer implementations (scikit-image, OpenCV, ...) the benchmarks time,
    so that tests check ours against the very code the results pages compare with."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "seglab_bench_peers", Path(__file__).resolve().parents[1] / "benchmarks" / "peers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _restore_torch_determinism():
    """Training sets torch.use_deterministic_algorithms process-wide; keep it from leaking into other tests."""
    yield
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.use_deterministic_algorithms(False)
