import os
import signal
from pathlib import Path

import numpy as np
import pytest

# One intra-op thread per test process: pytest runs with -n 2 on 2 cores, and PyTorch with 2 threads
# per worker on busy cores was measured up to 200x slower on small convolutions. Set before torch loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")

DATA = Path(os.environ.get("SEGLAB_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")).resolve()
WEIGHTS = Path(os.environ.get("SEGLAB_WEIGHTS", Path.home() / ".cache" / "seglab" / "weights")).expanduser()
# CI sets SEGLAB_REQUIRE_DATA=1: there a missing data set or weight file is a failure, not a skip.
REQUIRE_DATA = os.environ.get("SEGLAB_REQUIRE_DATA", "") not in ("", "0")
_MISSING_DATA = "real data sets not found"
_MISSING_WEIGHTS = "pretrained weights not found"


def missing(what: str):
    """Skip (or, under SEGLAB_REQUIRE_DATA, fail) a test whose data set or weight file is absent."""
    if REQUIRE_DATA:
        pytest.fail(f"{what} (SEGLAB_REQUIRE_DATA is set)", pytrace=False)
    pytest.skip(what)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared real data sets; tests that need them skip where they are absent."""
    if not DATA.is_dir():
        missing(f"{_MISSING_DATA} at {DATA} (set SEGLAB_DATA)")
    return DATA


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    """The pretrained-weight cache of ``../shared/tools/fetch_weights.sh`` (``SEGLAB_WEIGHTS``)."""
    if not (WEIGHTS / "mobile_sam.pt").is_file() or not (WEIGHTS / "mobilenet_v2-b0353104.pth").is_file():
        missing(f"{_MISSING_WEIGHTS} in {WEIGHTS} (run ../shared/tools/fetch_weights.sh, set SEGLAB_WEIGHTS)")
    return WEIGHTS


def pytest_terminal_summary(terminalreporter):
    """Say plainly how many tests did not run for want of the data sets or the weights."""
    reasons = [str(getattr(r, "longrepr", "")) for r in terminalreporter.stats.get("skipped", [])]
    for marker, what, var in ((_MISSING_DATA, "the real data sets", "SEGLAB_DATA"),
                              (_MISSING_WEIGHTS, "the pretrained weights", "SEGLAB_WEIGHTS")):
        n = sum(marker in r for r in reasons)
        if n:
            terminalreporter.write_line(f"NOTE: {n} tests were skipped because {what} were not found "
                                        f"(set {var}); CI runs them.", yellow=True, bold=True)


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


@pytest.fixture(autouse=True)
def _python_signal_handlers():
    """Every test starts and ends with Python's own SIGINT / SIGTERM handling (KeyboardInterrupt, default
    termination): libraries started by some tests (Ray's driver, servers, worker pools) install handlers
    or an ignored disposition in the test process, which the interrupt tests and the processes they start
    (an ignored signal stays ignored in a child) would otherwise inherit."""
    import threading

    def reset():
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    reset()
    yield
    reset()
