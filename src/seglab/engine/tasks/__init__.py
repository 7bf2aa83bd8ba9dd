"""What the training engine does for each task: one module per task, one line per task in :data:`TASKS`.

A task module defines ``Task(cfg, root, train_ds, val_ds)``, which checks the data, and gives
``lightning_module()`` (model, training step, validation metric), ``data_module()`` (loaders),
``export(path, module)`` (``best.pt`` / ``last.pt``) and ``test_report(run_dir, split, checkpoint,
summary, log)`` (the final report). ``semantic`` is :mod:`.semantic` (one class per pixel); ``instance``
is :mod:`.instance_module` (Mask R-CNN, calling the steps of :mod:`.instance`); ``panoptic`` is
:mod:`.panoptic_module` (Panoptic FPN on the instance task's data); ``promptable`` is
:mod:`.promptable_module` (SAM fine-tuning, the steps of :mod:`.promptable`); ``keypoint`` is
:mod:`.keypoint_module` (Keypoint R-CNN or a dense heatmap model, steps in :mod:`.keypoint`).
"""
from __future__ import annotations

import importlib

from ...errors import ParameterError

TASKS = {  # config `task` -> the module of this package that trains it
    "semantic": "semantic",
    "instance": "instance_module",
    "panoptic": "panoptic_module",
    "promptable": "promptable_module",
    "keypoint": "keypoint_module",
}


def get_task(name: str):
    """The ``Task`` class of task ``name``."""
    if name not in TASKS:
        raise ParameterError(f"config key 'task' must be one of: {', '.join(TASKS)}, got {name!r}")
    return importlib.import_module(f"{__name__}.{TASKS[name]}").Task
