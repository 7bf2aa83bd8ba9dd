"""Training engine (PyTorch Lightning): configs, the Lightning module, tiled inference and evaluation.

>>> from seglab.engine import load_config, train
>>> run_dir = train(load_config("configs/tiny.yaml"))  # doctest: +SKIP

``train`` is loaded on first use, so ``seglab.engine.evaluate`` and the config checks do not pay for
importing Lightning.
"""
from .config import load_config

__all__ = ["load_config", "train"]


def __getattr__(name):
    if name == "train":
        from .train import train

        # importing the submodule set this package's attribute `train` to it: the function replaces it
        globals()["train"] = train
        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
