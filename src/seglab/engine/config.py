"""Experiment files: one YAML document with every section below, merged over these defaults.

``load_config(path, sets)`` reads the file, applies ``--set a.b=c`` overrides (values parsed as YAML, so
``--set trainer.max_epochs=5`` is an int and ``--set augment.crop=[256,256]`` a list) and rejects any key
that is not in the schema with a one-line error naming it. Sections marked open (``*.options``) take any
key: they are passed on to the model, data reader or loss. ``$SEGLAB_DATA`` in ``data.root`` expands to
the data folder (default ``../shared/data`` beside the repository).
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from ..data.transforms import AUGMENT_DEFAULTS
from ..errors import InputFileError, ParameterError

DEFAULTS: dict[str, Any] = {
    "name": "experiment",
    "seed": 0,
    "model": {"name": "unet", "encoder": None, "pretrained": None, "options": {}},
    "data": {
        "root": None, "format": "folder", "options": {},
        "train_split": "train", "val_split": "val", "test_split": "test",
        "batch_size": 4, "val_batch_size": 1, "workers": 0,
        "mean": None, "std": None,   # per channel; default ImageNet (RGB) or 0.5 / 0.25 (gray)
        "check": True,               # run `seglab data check` on train / val before training
    },
    "augment": dict(AUGMENT_DEFAULTS),
    "loss": {"name": "ce", "options": {}, "class_weights": None},  # class_weights: null|inverse|median|sqrt_inverse|sqrt_median|[...]
    "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "momentum": 0.9},
    # by_time: decay over trainer.max_minutes instead of the step count when that ends first (the rate
    # then depends on the machine's speed, so such runs are not bit-reproducible)
    "schedule": {"name": "poly", "power": 0.9, "warmup_steps": 0, "warmup_start": 0.1, "min_lr": 0.0,
                 "by_time": False},
    "trainer": {
        "max_epochs": 10, "max_steps": -1, "max_minutes": None, "accumulate": 1,
        "precision": "auto",         # auto: bf16-mixed on a GPU that supports it, fp32 on CPU
        "accelerator": "auto", "devices": "auto", "strategy": "auto", "sync_batchnorm": True,
        "deterministic": True, "threads": None, "val_every": 1, "log_every": 10,
        "limit_train_batches": None, "limit_val_batches": None, "progress": True, "grad_clip": None,
    },
    "checkpoint": {"monitor": "val/mIoU", "mode": "max"},
    "early_stopping": {"patience": 0, "min_delta": 0.0},  # patience 0: off; monitors checkpoint.monitor
    "evaluate": {"tile": None, "overlap": 0.5, "window": "gaussian", "flip": False, "scales": [1.0],
                 "checkpoint": "best"},   # which checkpoint the final test report uses: best | last
    "run": {"dir": "runs", "resume": True},
}
OPEN_SECTIONS = {"model.options", "data.options", "loss.options"}


def data_root_default() -> Path:
    env = os.environ.get("SEGLAB_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


def _check_keys(cfg: dict, schema: dict, prefix: str = "") -> None:
    for k, v in cfg.items():
        path = f"{prefix}{k}"
        if k not in schema:
            raise ParameterError(f"unknown config key {path!r}; {prefix.rstrip('.') or 'top level'} has: "
                                 f"{', '.join(schema)}")
        if isinstance(schema[k], dict) and path not in OPEN_SECTIONS:
            if not isinstance(v, dict):
                raise ParameterError(f"config key {path!r} must be a section (mapping), got {v!r}")
            _check_keys(v, schema[k], path + ".")


def merge(base: dict, over: dict) -> dict:
    """Deep merge ``over`` into a copy of ``base`` (dicts merge, anything else replaces)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def apply_sets(cfg: dict, sets: dict[str, str]) -> dict:
    """Apply ``{"a.b": "value"}`` overrides; the key must exist in the schema (or in an open section)."""
    cfg = copy.deepcopy(cfg)
    for key, raw in sets.items():
        parts = key.split(".")
        node, schema = cfg, DEFAULTS
        for i, p in enumerate(parts):
            here = ".".join(parts[: i + 1])
            parent_open = ".".join(parts[:i]) in OPEN_SECTIONS
            if not parent_open and (not isinstance(schema, dict) or p not in schema):
                raise ParameterError(f"--set {key}: unknown config key {here!r}")
            if i == len(parts) - 1:
                try:
                    node[p] = yaml.safe_load(raw) if raw.strip() else None
                except yaml.YAMLError:
                    node[p] = raw
            else:
                if not isinstance(node.get(p), dict):
                    if parent_open:
                        node[p] = {}
                    else:
                        raise ParameterError(f"--set {key}: {here!r} is not a section")
                node, schema = node[p], (schema.get(p) if isinstance(schema, dict) and not parent_open else {})
    return cfg


def load_config(path=None, sets: dict[str, str] | None = None, *, overrides: dict | None = None) -> dict:
    """Defaults <- YAML file <- ``overrides`` dict <- ``--set`` strings; validated, ``data.root`` resolved."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise InputFileError(f"{path}: no such config file")
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            line = f" line {where.line + 1}" if where is not None else ""
            raise InputFileError(f"{path}:{line} not valid YAML ({getattr(exc, 'problem', exc)})") from None
        if not isinstance(doc, dict):
            raise InputFileError(f"{path}: an experiment file must be a YAML mapping")
        _check_keys(doc, DEFAULTS)
        cfg = merge(cfg, doc)
    if overrides:
        _check_keys(overrides, DEFAULTS)
        cfg = merge(cfg, overrides)
    if sets:
        cfg = apply_sets(cfg, sets)
    _check_keys(cfg, DEFAULTS)
    return cfg


def resolve_root(root) -> Path:
    """``data.root`` with ``$SEGLAB_DATA`` expanded to the data folder."""
    if root is None:
        raise ParameterError("config key 'data.root' is not set")
    s = str(root)
    if "$SEGLAB_DATA" in s or "${SEGLAB_DATA}" in s:
        s = s.replace("${SEGLAB_DATA}", str(data_root_default())).replace("$SEGLAB_DATA", str(data_root_default()))
    return Path(os.path.expanduser(s))


def dump(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False)
