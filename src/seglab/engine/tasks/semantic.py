"""The semantic-segmentation task: :class:`~seglab.engine.module.SegModule` (one class logit per pixel),
the data checks and class weights, the ImageNet / data-set normalisation and the confusion-matrix report."""
from __future__ import annotations

from pathlib import Path

from ...data.check import class_weights
from ...errors import ParameterError
from ..module import SegDataModule, SegModule, normalisation
from .checks import check_splits


def _class_weights(cfg, root, train_ds, val_ds):
    """Run the data check on train / val (when asked or when the class weights need its counts)."""
    reports = {}
    weights_spec = cfg["loss"].get("class_weights")
    if cfg["data"]["check"] or isinstance(weights_spec, str):
        reports = check_splits(cfg, root, train_ds, val_ds)
    if isinstance(weights_spec, str):
        return class_weights(reports[train_ds.split], weights_spec)
    if weights_spec is not None:
        cw = [float(v) for v in weights_spec]
        if len(cw) != train_ds.info.num_classes:
            raise ParameterError(f"loss.class_weights has {len(cw)} values, the data set has "
                                 f"{train_ds.info.num_classes} classes")
        return cw
    return None


class Task:
    """Semantic segmentation as ``seglab train`` has always run it."""

    def __init__(self, cfg: dict, root: Path, train_ds, val_ds):
        if getattr(train_ds, "task", "semantic") != "semantic":
            raise ParameterError(f"data set {root} ({cfg['data']['format']}) gives {train_ds.task} targets; "
                                 "train it with task: instance, or choose a semantic target (data.options.target)")
        self.cfg, self.root, self.train_ds, self.val_ds = cfg, root, train_ds, val_ds
        self.class_weights = _class_weights(cfg, root, train_ds, val_ds)
        self.mean, self.std = normalisation(cfg, train_ds.info)

    def lightning_module(self) -> SegModule:
        return SegModule(self.cfg, self.train_ds.info.to_dict(), self.class_weights)

    def data_module(self) -> SegDataModule:
        val = self.val_ds if self.val_ds is not None else self.train_ds
        return SegDataModule(self.cfg, self.train_ds, val, self.mean, self.std)

    def export(self, path, module) -> Path:
        from ..checkpoint import export

        return export(path, module, self.mean, self.std)

    def test_report(self, run_dir: Path, test_ds, checkpoint: Path, summary: dict, log) -> None:
        """Score ``checkpoint`` on ``test_ds``; write ``report.json`` / ``report.md`` / ``confusion.png``."""
        from ..checkpoint import load_trained
        from ..evaluate import evaluate_dataset, markdown_report, write_report

        cfg = self.cfg
        trained = load_trained(checkpoint)
        e = cfg["evaluate"]
        res = evaluate_dataset(trained, test_ds, tile=e["tile"], overlap=e["overlap"], window=e["window"],
                               flip=e["flip"], scales=e["scales"])
        res["split"], res["checkpoint"] = test_ds.split, str(trained.path)
        summary["test"] = {k: v for k, v in res.items() if k not in ("matrix", "per_class", "classes")}
        res["training"] = summary
        write_report(res, run_dir, f"{cfg['name']}: {test_ds.split} split", json_path=run_dir / "report.json")
        log(markdown_report(res, f"{cfg['name']}: {test_ds.split} split"))
