"""Experiment files: one YAML document, merged over the defaults of its task's schema and validated.

``load_config(path, sets)`` reads the file, applies ``--set a.b=c`` overrides (values parsed as YAML, so
``--set trainer.max_epochs=5`` is an int and ``--set augment.crop=[256,256]`` a list) and checks the result
against the typed schema of :mod:`seglab.engine.schema` before anything runs: an unknown key, a value of
the wrong type or out of range gives one :class:`~seglab.errors.ParameterError` line naming the key path
and the allowed values. ``$SEGLAB_DATA`` in ``data.root`` expands to the data folder (default
``../shared/data`` beside the repository); ``$SEGLAB_WEIGHTS`` (and any other environment variable) in
``model.pretrained`` / ``model.pretrained_backbone`` / ``model.encoder_weights`` to the weights folder (default
``~/.cache/seglab/weights``).
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import InputFileError, ParameterError
from .schema import defaults, schema_for

DEFAULTS: dict[str, Any] = defaults("semantic")


# --- one-line errors ---------------------------------------------------------------------------------

_TYPES = {"int_type": "an integer", "int_from_float": "an integer", "int_parsing": "an integer",
          "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false",
          "bool_parsing": "true or false", "string_type": "a string", "list_type": "a list",
          "dict_type": "a section (mapping)", "model_type": "a section (mapping)",
          "model_attributes_type": "a section (mapping)"}
_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}


def _path(loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _section_keys(schema: type[BaseModel], loc) -> list[str]:
    cls = schema
    for part in loc:
        ann = cls.model_fields[part].annotation if isinstance(part, str) and part in cls.model_fields else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            break
        cls = ann
    return list(cls.model_fields)


def error_message(exc: ValidationError, schema: type[BaseModel]) -> tuple[str, str]:
    """``(key path, one-line message)`` for the first error of a validation."""
    err = exc.errors(include_url=False)[0]
    loc, t, ctx, value = tuple(err["loc"]), err["type"], err.get("ctx") or {}, err.get("input")
    if t == "seglab":
        path = _path(loc) + (("." if loc else "") + ctx["key"] if ctx.get("key") else "")
        value = ctx.get("value")
        if ctx.get("key") and ctx["key"].startswith("options.") and ctx["msg"].startswith("is not "):
            # an unknown option: say so, no value
            return path, f"unknown config key {path!r}: {ctx['msg']}"
        return path, f"config key {path!r} {ctx['msg']}, got {value!r}"
    path = _path(loc)
    if t == "extra_forbidden":
        parent = _path(loc[:-1]) or "top level"
        return path, f"unknown config key {path!r}; {parent} has: {', '.join(_section_keys(schema, loc[:-1]))}"
    if t in _TYPES:
        what = f"must be {_TYPES[t]}"
        if _TYPES[t].startswith("a section"):
            return path, f"config key {path!r} {what}, got {value!r}"
    elif t in _BOUNDS:
        bound = next(iter(ctx.values()))
        bound = f"{bound:g}" if isinstance(bound, float) else bound
        what = f"must be {_BOUNDS[t]} {bound}"
    elif t == "literal_error":
        what = f"must be one of: {ctx['expected'].replace(' or ', ', ')}"
    elif t in ("too_short", "too_long"):
        n = ctx.get("min_length", ctx.get("max_length"))
        what = f"must have {'at least' if t == 'too_short' else 'at most'} {n} value{'s' if n != 1 else ''}"
    else:
        what = err["msg"][:1].lower() + err["msg"][1:]
    return path, f"config key {path!r} {what}, got {value!r}"


def weights_dir() -> Path:
    """``$SEGLAB_WEIGHTS``, else ``~/.cache/seglab/weights`` (where ``fetch_weights.sh`` puts them)."""
    return Path(os.environ.get("SEGLAB_WEIGHTS") or Path.home() / ".cache" / "seglab" / "weights").expanduser()


WEIGHT_KEYS = ("pretrained", "pretrained_backbone", "encoder_weights")  # model keys holding a weights file


def expand_paths(cfg: dict) -> dict:
    """``cfg`` with ``$SEGLAB_WEIGHTS`` / ``${SEGLAB_WEIGHTS}`` (default :func:`weights_dir`), other
    environment variables and ``~`` expanded in the model's weight-file keys (a new dict when changed)."""
    model = cfg.get("model")
    if not isinstance(model, dict) or not any(isinstance(model.get(k), str) and ("$" in model[k] or
                                                                                 model[k].startswith("~"))
                                              for k in WEIGHT_KEYS):
        return cfg
    model = dict(model)
    for k in WEIGHT_KEYS:
        v = model.get(k)
        if isinstance(v, str) and not v.startswith("hf:"):
            v = v.replace("${SEGLAB_WEIGHTS}", str(weights_dir())).replace("$SEGLAB_WEIGHTS", str(weights_dir()))
            model[k] = os.path.expanduser(os.path.expandvars(v))
    return {**cfg, "model": model}


def validate(cfg: dict) -> dict:
    """The config checked against its task's schema, with every default filled in (a new dict)."""
    if not isinstance(cfg, dict):
        raise ParameterError(f"an experiment config must be a mapping, got {type(cfg).__name__}")
    cfg = expand_paths(cfg)
    schema = schema_for(cfg.get("task", "semantic"))
    try:
        return schema.model_validate(cfg).model_dump()
    except ValidationError as exc:
        raise ParameterError(error_message(exc, schema)[1]) from None


def check(cfg: dict) -> tuple[str, str] | None:
    """``(key path, message)`` of the first problem, or None (for callers that add context)."""
    try:
        schema = schema_for(cfg.get("task", "semantic"))
    except ParameterError as exc:
        return "task", str(exc)
    try:
        schema.model_validate(expand_paths(cfg))
    except ValidationError as exc:
        return error_message(exc, schema)
    return None


def data_root_default() -> Path:
    env = os.environ.get("SEGLAB_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


def merge(base: dict, over: dict) -> dict:
    """Deep merge ``over`` into a copy of ``base`` (dicts merge, anything else replaces)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _parse_value(raw: str):
    if not raw.strip():
        return None
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def apply_sets(cfg: dict, sets: dict[str, str]) -> dict:
    """Apply ``{"a.b": "value"}`` overrides (values parsed as YAML); the schema checks them afterwards."""
    cfg = copy.deepcopy(cfg)
    for key, raw in sets.items():
        parts = key.split(".")
        if not all(parts):
            raise ParameterError(f"--set {key}: empty part in the key")
        node = cfg
        for i, p in enumerate(parts[:-1]):
            if p not in node:
                node[p] = {}
            elif not isinstance(node[p], dict):
                raise ParameterError(f"--set {key}: {'.'.join(parts[:i + 1])!r} is not a section")
            node = node[p]
        node[parts[-1]] = _parse_value(raw)
    return cfg


def _read(path: Path) -> dict:
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
    return doc


def load_config(path=None, sets: dict[str, str] | None = None, *, overrides: dict | None = None) -> dict:
    """Task defaults <- YAML file <- ``overrides`` dict <- ``--set`` strings, validated (a plain dict)."""
    doc = _read(Path(path)) if path is not None else {}
    merged = merge(doc, overrides or {})
    if sets:
        merged = apply_sets(merged, sets)
    schema_for(merged.get("task", "semantic"))  # an unknown task: one line before anything else
    problem = check(merged)
    if problem is not None:
        key, msg = problem
        culprit = next((k for k in sets or {} if key == k or key.startswith((k + ".", k + "["))
                        or k.startswith(key + ".")), None)
        if culprit is not None:
            raise ParameterError(f"--set {culprit}: {msg}")
        raise ParameterError(f"{path}: {msg}" if path is not None and _in(doc, key) else msg)
    return validate(merged)


def _in(doc: dict, key: str) -> bool:
    """Whether the dotted ``key`` (or its section) was written in ``doc``."""
    node = doc
    for part in key.split("[")[0].split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


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
