"""``seglab train``, ``seglab evaluate`` and ``seglab predict``."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .app import app, console, parse_sets


@app.command("train")
def train_cmd(
    config: Path = typer.Argument(..., help="Experiment file (YAML), e.g. configs/tiny.yaml."),
    sets: Optional[List[str]] = typer.Option(None, "--set", help="Override a config key: a.b=value; repeatable."),
):
    """Train a model from an experiment file; writes a run directory (config, logs, checkpoints, report).

    Running the same command again resumes an interrupted training from its last checkpoint.
    """
    from ..engine.config import load_config
    from ..engine.train import train

    cfg = load_config(config, parse_sets(sets))
    train(cfg, log=lambda s: console.print(s, markup=False, highlight=False, soft_wrap=True))
