"""The typed experiment schema: every bad value is one ParameterError line naming the key path and what
it may be, before anything runs; the `task` key selects a schema; the docs list every key."""
import re
from pathlib import Path

import pytest
from pydantic import Field

from seglab.cli.main import main
from seglab.data.transforms import AUGMENT_DEFAULTS
from seglab.engine.config import DEFAULTS, load_config, validate
from seglab.engine.rundir import flatten
from seglab.engine.schema import TASKS, ExperimentConfig, Section, register_task
from seglab.errors import ParameterError

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "tiny.yaml"

BAD = [  # (--set key, value, what the message must contain)
    ("data.batch_size", "0", "'data.batch_size' must be >= 1, got 0"),
    ("data.batch_size", "eight", "'data.batch_size' must be an integer, got 'eight'"),
    ("data.batch_size", "2.5", "'data.batch_size' must be an integer, got 2.5"),
    ("data.workers", "-1", "'data.workers' must be >= 0"),
    ("data.format", "kitti", "'data.format' must be one of: ade20k, bsds500, camvid,"),
    ("data.options.nn", "3", "'data.options.nn': is not an option of data format 'synthetic'; options: n, size"),
    ("data.std", "[0.2, 0]", "'data.std[1]' must be > 0"),
    ("augment.hflip", "1.5", "'augment.hflip' must be <= 1, got 1.5"),
    ("augment.vflip", "-0.1", "'augment.vflip' must be >= 0"),
    ("augment.elastic", "yes", "'augment.elastic' must be a number, got True"),
    ("augment.crop", "0", "'augment.crop[0]' must be >= 1, got 0"),
    ("augment.crop", "[32, 32, 3]", "'augment.crop' must be one number or a pair [a, b]"),
    ("augment.resize", "big", "'augment.resize' must be a list, got 'big'"),
    ("augment.scale", "[1.5, 0.5]", "'augment.scale' must be [lo, hi] with lo <= hi"),
    ("augment.rotate", "270", "'augment.rotate' must be <= 180"),
    ("augment.border", "wrap", "'augment.border' must be one of: 'constant', 'reflect', got 'wrap'"),
    ("checkpoint.mode", "maximum", "'checkpoint.mode' must be one of: 'max', 'min', got 'maximum'"),
    ("checkpoint.monitor", "val/miou", "'checkpoint.monitor' must be one of: 'val/mIoU', 'val/mean_accuracy',"),
    ("loss.name", "cross_entropyy", "'loss.name' must be a loss or a sum such as '0.5*ce+dice'; losses: ce, bce,"),
    ("loss.options.gama", "2", "'loss.options.gama': is not a parameter of loss 'ce'; parameters: label_smoothing"),
    ("loss.class_weights", "mean", "'loss.class_weights' must be null, one of inverse, median, sqrt_inverse"),
    ("optimizer.name", "rmsprop", "'optimizer.name' must be one of: 'sgd', 'adam', 'adamw', got 'rmsprop'"),
    ("optimizer.lr", "fast", "'optimizer.lr' must be a number, got 'fast'"),
    ("optimizer.lr", "-1e-3", "'optimizer.lr' must be >= 0, got -0.001"),
    ("optimizer.momentum", "1.5", "'optimizer.momentum' must be <= 1"),
    ("schedule.name", "step", "'schedule.name' must be one of: 'poly', 'cosine', 'constant', got 'step'"),
    ("schedule.warmup_steps", "-5", "'schedule.warmup_steps' must be >= 0"),
    ("trainer.max_epochs", "0", "'trainer.max_epochs' must be >= 1, got 0"),
    ("trainer.max_steps", "0", "'trainer.max_steps' must be -1 (no limit) or >= 1, got 0"),
    ("trainer.max_minutes", "0", "'trainer.max_minutes' must be > 0"),
    ("trainer.precision", "fp8", "'trainer.precision' must be one of: 'auto', '32-true', '16-mixed'"),
    ("trainer.accelerator", "tpu", "'trainer.accelerator' must be one of: 'auto', 'cpu', 'gpu'"),
    ("trainer.devices", "0", "'trainer.devices' must be 'auto', a number of devices (>= 1)"),
    ("trainer.limit_val_batches", "1.5", "'trainer.limit_val_batches' must be null, a number of batches"),
    ("trainer.progress", "maybe", "'trainer.progress' must be true or false, got 'maybe'"),
    ("early_stopping.patience", "-1", "'early_stopping.patience' must be >= 0"),
    ("evaluate.overlap", "1", "'evaluate.overlap' must be < 1, got 1"),
    ("evaluate.window", "box", "'evaluate.window' must be one of: 'gaussian', 'cosine', 'uniform', got 'box'"),
    ("evaluate.scales", "[]", "'evaluate.scales' must have at least 1 value, got []"),
    ("evaluate.checkpoint", "first", "'evaluate.checkpoint' must be one of: 'best', 'last', got 'first'"),
    ("model.name", "unet3", "'model.name' must be one of: deeplabv3, deeplabv3plus,"),
    ("model.options.widht", "3", "'model.options.widht': is not an option of model 'unet'; options: base_width"),
    ("model.pretrained", "missing.pth", "'model.pretrained' must be an existing weights file or 'hf:<repo>'"),
    ("name", "a/b", "'name' must be a non-empty folder name (no '/'), got 'a/b'"),
    ("seed", "-1", "'seed' must be >= 0"),
    ("run.resume", "1", "'run.resume' must be true or false, got 1"),
    ("trainer.max_epoch", "3", "unknown config key 'trainer.max_epoch'; trainer has: max_epochs, max_steps,"),
    ("task", "depth", "config key 'task' must be one of: semantic, instance, panoptic, promptable, keypoint, got 'depth'"),
]


@pytest.mark.parametrize("key,value,want", BAD, ids=[f"{k}={v}" for k, v, _ in BAD])
def test_bad_values_give_one_line_naming_the_key(key, value, want):
    with pytest.raises(ParameterError) as e:
        load_config(CONFIG, {key: value})
    msg = str(e.value)
    assert want in msg and "\n" not in msg, msg
    if key != "task":
        assert msg.startswith(f"--set {key}: ")


def test_file_values_name_the_file_and_validate_in_train(tmp_path):
    f = tmp_path / "e.yaml"
    f.write_text("name: x\ndata: {root: ., format: synthetic, batch_size: 0}\n")
    with pytest.raises(ParameterError, match=re.escape(f"{f}: config key 'data.batch_size' must be >= 1, got 0")):
        load_config(f)
    f.write_text("name: x\ndata: {root: ., format: synthetic}\noptimizer: {lr: 1e-3}\n")
    assert load_config(f)["optimizer"]["lr"] == 0.001  # YAML reads 1e-3 as a string; it is a number here
    from seglab.engine import train

    cfg = load_config(f)
    cfg["augment"]["crop"] = [0, 8]  # the API validates too, before anything runs
    with pytest.raises(ParameterError, match=r"'augment.crop\[0\]' must be >= 1"):
        train({**cfg, "run": {"dir": str(tmp_path / "runs"), "resume": True}})
    assert not (tmp_path / "runs").exists()


def test_cli_exit_2_before_anything_runs(tmp_path, capsys):
    assert main(["train", str(CONFIG), "--set", f"run.dir={tmp_path}", "--set", "augment.hflip=2"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err == "error: --set augment.hflip: config key 'augment.hflip' must be <= 1, got 2"
    assert not list(tmp_path.iterdir())


def test_normalised_values_and_defaults():
    cfg = load_config(CONFIG, {"augment.crop": "24", "evaluate.tile": "[16, 20]", "trainer.devices": "[0]"})
    assert cfg["augment"]["crop"] == [24, 24] and cfg["evaluate"]["tile"] == [16, 20]
    assert cfg["task"] == "semantic" and validate(cfg) == cfg  # validation is idempotent
    assert DEFAULTS["augment"] == AUGMENT_DEFAULTS  # the schema and the transforms agree


def test_a_new_task_adds_its_own_section():
    class ToySection(Section):
        radius: int = Field(3, ge=1)

    class ToyConfig(ExperimentConfig):
        task: str = "toy"
        toy: ToySection = Field(default_factory=ToySection)

    register_task("toy", ToyConfig)
    try:
        cfg = load_config(None, {"task": "toy", "toy.radius": "5", "data.format": "synthetic"})
        assert cfg["toy"] == {"radius": 5} and "augment" not in cfg and cfg["optimizer"] == DEFAULTS["optimizer"]
        with pytest.raises(ParameterError, match="'toy.radius' must be >= 1, got 0"):
            load_config(None, {"task": "toy", "toy.radius": "0"})
        with pytest.raises(ParameterError, match="unknown config key 'augment'"):
            load_config(None, {"task": "toy", "augment.hflip": "0.5"})
    finally:
        del TASKS["toy"]


def test_docs_describe_every_key():
    doc = (ROOT / "docs" / "training.md").read_text()
    section = doc[doc.index("## Experiment files"):doc.index("## Training")]
    missing = [k for k in flatten(DEFAULTS) if f"`{k}`" not in section]
    assert not missing, missing
