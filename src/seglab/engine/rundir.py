"""Whether a config may start, continue or extend the run in its run directory.

A run directory belongs to one config. Running ``seglab train`` again with that config continues the run
from ``checkpoints/last.ckpt``; only the keys in :data:`MAY_CHANGE` may differ (they do not change what is
trained: longer limits, speed and display settings, the final report). Any other difference is refused
with one line naming it, so that an incompatible checkpoint is never loaded and the saved config never
overwritten. A finished run stays finished until a limit in :data:`LIMITS` is raised.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import ParameterError
from .history import NO_POSITION, read_summary

LIMITS = ("trainer.max_epochs", "trainer.max_steps", "trainer.max_minutes", "trainer.max_cpu_minutes")
MAY_CHANGE = LIMITS + ("trainer.progress", "trainer.threads", "trainer.log_every", "data.workers",
                       "data.check", "evaluate.flip", "evaluate.scales", "evaluate.checkpoint",
                       "run.dir")  # the same folder written another way (relative / absolute)


@dataclasses.dataclass
class RunState:
    run_dir: Path
    last_ckpt: Path | None         # the checkpoint to continue from
    position: tuple[int, int]      # (last completed epoch, optimiser steps) of last_ckpt
    finished: str | None           # a one-line message when there is nothing left to do


def flatten(cfg: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in cfg.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def differences(saved: dict, new: dict) -> list[tuple[str, object, object]]:
    """``(key, saved value, new value)`` for every dotted key whose value differs, in the new config's order."""
    a, b = flatten(saved), flatten(new)
    keys = list(b) + [k for k in a if k not in b]
    return [(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)]


def checkpoint_position(ckpt: dict) -> tuple[int, int]:
    """(epoch the checkpoint completed, optimiser steps taken) of a Lightning checkpoint dict."""
    loop = ((ckpt.get("loops") or {}).get("fit_loop") or {}).get("epoch_loop.state_dict") or {}
    return int(ckpt.get("epoch", -1)), int(loop.get("_batches_that_stepped", ckpt.get("global_step", 0)))


def inspect_run(run_dir: Path, cfg: dict) -> RunState:
    """What ``seglab train`` with ``cfg`` will do in ``run_dir``; raises ParameterError when it must not."""
    from .checkpoint import read_torch_file
    from .config import load_config

    saved_path, last = run_dir / "config.yaml", run_dir / "checkpoints" / "last.ckpt"
    new_run = f"start a new run with --set name=NEW (or remove {run_dir})"
    if not saved_path.is_file():
        if last.is_file():
            raise ParameterError(f"{run_dir} holds checkpoints but no config.yaml; {new_run}")
        return RunState(run_dir, None, NO_POSITION, None)
    if not cfg["run"]["resume"]:
        raise ParameterError(f"{run_dir} already holds a run and run.resume is false; {new_run}")
    saved = load_config(saved_path)
    diffs = [d for d in differences(saved, cfg) if d[0] not in MAY_CHANGE]
    if diffs:
        key, old, new = diffs[0]
        more = f" and {len(diffs) - 1} more" if len(diffs) > 1 else ""
        raise ParameterError(f"{run_dir} holds a run with another config ({key}: {old!r} there, {new!r} here"
                             f"{more}); continue it with `seglab train {saved_path}`, or {new_run}")
    position, ckpt = NO_POSITION, None
    if last.is_file():
        ckpt = last
        position = checkpoint_position(read_torch_file(last, "checkpoint"))
    summary = read_summary(run_dir / "summary.json")
    finished = None
    if summary.get("status") == "finished" and all(flatten(saved)[k] == flatten(cfg)[k] for k in LIMITS):
        tr = cfg["trainer"]
        longer = (f"--set trainer.max_minutes=M (more than {tr['max_minutes']:g})" if tr["max_minutes"] else
                  f"--set trainer.max_epochs=N (more than {tr['max_epochs']})")
        finished = (f"{run_dir} is finished ({summary.get('epochs')} epochs, {summary.get('steps')} steps); "
                    f"to train longer: seglab train {saved_path} {longer}; for a new run: --set name=NEW")
    return RunState(run_dir, ckpt, position, finished)
