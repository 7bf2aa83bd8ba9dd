"""Training engine (PyTorch Lightning): configs, the Lightning module, tiled inference and evaluation.

>>> from seglab.engine import load_config, train
>>> run_dir = train(load_config("configs/tiny.yaml"))  # doctest: +SKIP
"""
from .config import load_config
from .train import train

__all__ = ["load_config", "train"]
