"""What ``seglab predict`` writes for each task, one image at a time (the CLI parses, loops and prints).

Semantic (:class:`SemanticFiles`): ``OUT/STEM.png``, the label map with the data set's palette, and with
``overlay`` ``OUT/STEM_overlay.png``. Instance (:class:`InstanceFiles`): ``OUT/STEM.png``, a 16-bit instance
label map (0 background, 1..N by descending score, :meth:`seglab.structures.Instances.to_label_map`), with
``overlay`` ``OUT/STEM_overlay.png`` (a colour and an outline per object), and for the whole run
``OUT/results.json``: COCO results (``image_id``, ``category_id``, RLE ``segmentation``, ``xywh``
``bbox``, ``score``, plus ``file_name``) of every detection kept. ``image_id`` is the file stem when every
stem is a number (COCO's file names, so the file scores against COCO annotations as is), else the
1-based position of the image in the input list. Panoptic (:class:`PanopticFiles`): ``OUT/STEM.png``, a
COCO panoptic PNG (segment id = R + 256 G + 256^2 B, 0 void), with ``overlay`` ``OUT/STEM_overlay.png``,
and ``OUT/panoptic.json``: COCO panoptic ``annotations`` (``segments_info`` with category, area, box and,
for things, the score) and ``categories`` of every image finished.
Keypoint (:class:`KeypointFiles`): with ``overlay``
``OUT/STEM_overlay.png`` (keypoints and skeleton drawn) and ``OUT/results.json``, COCO keypoint results.

Every file is written atomically; the files of one image appear together (:func:`held_interrupts`).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..io import atomic_write, save_png
from ..io.atomic import atomic_path
from ..io.outputs import held_interrupts


class _Timed:
    """Seconds and CPU-seconds spent in the model (not reading or writing files), and ``written``: the
    images whose files are complete (counted inside the block that writes them, so an interrupt delivered as
    the block ends still finds them counted)."""

    seconds = cpu_seconds = 0.0
    written = 0

    def timed(self, fn, *args):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return fn(*args)
        finally:
            self.seconds += time.perf_counter() - t0
            self.cpu_seconds += time.process_time() - c0


def _read(f: Path) -> np.ndarray:
    from ..data.base import as_uint8_image
    from ..io import read_image

    return as_uint8_image(read_image(f), f)


class SemanticFiles(_Timed):
    def __init__(self, predictor, out: Path, overlay: bool = False):
        self.predictor, self.out, self.overlay = predictor, Path(out), overlay

    def outputs(self, files: list[Path]) -> list[tuple[Path, Path]]:
        """``(output, input)`` for every file the run will write."""
        out = []
        for f in files:
            out.append((self.out / f"{f.stem}.png", f))
            if self.overlay:
                out.append((self.out / f"{f.stem}_overlay.png", f))
        return out

    def write(self, f: Path, protect=()) -> int:
        """Predict ``f`` and write its files; returns its number of pixels."""
        from ..io import overlay, write_labels

        image = _read(f)
        labels = self.timed(self.predictor.predict, image)
        shown = overlay(image, labels, colors=self.predictor.palette) if self.overlay else None
        with held_interrupts():  # the label map and its overlay appear together
            write_labels(self.out / f"{f.stem}.png", labels, protect=protect)
            if shown is not None:
                save_png(self.out / f"{f.stem}_overlay.png", shown, protect=protect)
            self.written += 1
        return labels.size

    def close(self, protect=()) -> list[Path]:
        return []


def write_label_map16(path, labels: np.ndarray, *, protect=()) -> Path:
    """An instance label map as a 16-bit gray PNG (whatever its largest id), atomically."""
    from PIL import Image

    from ..errors import SeglabError

    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() > 65535):
        raise SeglabError(f"{path}: instance ids must lie in [0, 65535]")
    with atomic_path(path, protect=protect) as tmp:
        Image.fromarray(labels.astype(np.uint16)).save(tmp, format="PNG")
    return Path(path)


def instance_overlay(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """A colour per object (background untouched) and each object's outline, uint8 ``H x W x 3``."""
    from ..io import overlay

    return overlay(image, labels.astype(np.int64) - 1, boundaries=True)  # -1 (background): not coloured


class InstanceFiles(_Timed):
    def __init__(self, predictor, out: Path, overlay: bool = False, classes=()):
        self.predictor, self.out, self.overlay = predictor, Path(out), overlay
        self.classes = list(classes)
        self.results: list[dict] = []
        self.ids: dict[Path, int] = {}

    def outputs(self, files: list[Path]) -> list[tuple[Path, object]]:
        stems = [f.stem for f in files]
        numeric = all(s.isdigit() for s in stems) and len(set(map(int, stems))) == len(stems)
        self.ids = {f: (int(f.stem) if numeric else k + 1) for k, f in enumerate(files)}
        out = []
        for f in files:
            out.append((self.out / f"{f.stem}.png", f))
            if self.overlay:
                out.append((self.out / f"{f.stem}_overlay.png", f))
        return out + [(self.out / "results.json", "the run's COCO results")]

    def write(self, f: Path, protect=()) -> int:
        from .evaluate_instance import rle_results

        image = _read(f)
        inst = self.timed(self.predictor.predict, image[..., 0] if image.shape[2] == 1 else image)
        labels = inst.to_label_map()
        shown = instance_overlay(image, labels) if self.overlay else None
        found = [{**r, "file_name": f.name} for r in rle_results(inst, self.ids.get(f, len(self.ids) + 1))]
        with held_interrupts():
            write_label_map16(self.out / f"{f.stem}.png", labels, protect=protect)
            if shown is not None:
                save_png(self.out / f"{f.stem}_overlay.png", shown, protect=protect)
            self.results += found
            self.written += 1
        return labels.size

    def close(self, protect=()) -> list[Path]:
        """Write ``results.json`` (the detections of the images written so far)."""
        path = self.out / "results.json"
        with held_interrupts():
            atomic_write(path, json.dumps(self.results), protect=protect)
        return [path]


class PanopticFiles(_Timed):
    def __init__(self, predictor, out: Path, overlay: bool = False):
        self.predictor, self.out, self.overlay = predictor, Path(out), overlay
        self.annotations: list[dict] = []

    @classmethod
    def for_checkpoint(cls, trained, out: Path, overlay: bool = False, score_threshold: float | None = None):
        """The writer of a loaded panoptic checkpoint, with its training's fusion settings."""
        from ..predictors.panoptic import PanopticPredictor
        from .tasks.panoptic_module import fusion_options

        if score_threshold is None:
            score_threshold = float((trained.config.get("evaluate") or {}).get("score_threshold", 0.5))
        predictor = PanopticPredictor(trained.model, trained.info.classes[1:], score_threshold=score_threshold,
                                      **fusion_options(trained.config))
        return cls(predictor, out, overlay)

    def outputs(self, files: list[Path]) -> list[tuple[Path, object]]:
        out = []
        for f in files:
            out.append((self.out / f"{f.stem}.png", f))
            if self.overlay:
                out.append((self.out / f"{f.stem}_overlay.png", f))
        return out + [(self.out / "panoptic.json", "the run's COCO panoptic segments")]

    def write(self, f: Path, protect=()) -> int:
        from ..panoptic import segments_info, write_panoptic_png

        image = _read(f)
        ids, segments = self.timed(self.predictor.predict, image[..., 0] if image.shape[2] == 1 else image)
        info = segments_info(ids, segments)
        for s, seg in zip(info, segments):
            if "score" in seg:
                s["score"] = seg["score"]
        shown = instance_overlay(image, ids) if self.overlay else None
        with held_interrupts():
            write_panoptic_png(self.out / f"{f.stem}.png", ids, protect=protect)
            if shown is not None:
                save_png(self.out / f"{f.stem}_overlay.png", shown, protect=protect)
            self.annotations.append({"image_id": len(self.annotations) + 1, "file_name": f"{f.stem}.png",
                                     "source": f.name, "segments_info": info})
            self.written += 1
        return ids.size

    def close(self, protect=()) -> list[Path]:
        """Write ``panoptic.json`` (the segments of the images written so far and the categories)."""
        path = self.out / "panoptic.json"
        with held_interrupts():
            atomic_write(path, json.dumps({"annotations": self.annotations,
                                           "categories": self.predictor.categories}), protect=protect)
        return [path]


class KeypointFiles(_Timed):
    """Keypoint predictions: with ``overlay`` ``OUT/STEM_overlay.png`` (keypoints as disks, one colour per
    keypoint, and the skeleton as lines), and for the whole run ``OUT/results.json``: COCO keypoint results
    (``image_id``, ``category_id``, ``keypoints`` as COCO pixel indices, ``score``, plus ``file_name``)
    of every object kept, ``image_id`` as for :class:`InstanceFiles`."""

    def __init__(self, predictor, out: Path, overlay: bool = False):
        self.predictor, self.out, self.overlay = predictor, Path(out), overlay
        self.results: list[dict] = []
        self.ids: dict[Path, int] = {}

    def outputs(self, files: list[Path]) -> list[tuple[Path, object]]:
        InstanceFiles.outputs(self, files)  # the image ids
        out = [(self.out / f"{f.stem}_overlay.png", f) for f in files] if self.overlay else []
        return out + [(self.out / "results.json", "the run's COCO keypoint results")]

    def write(self, f: Path, protect=()) -> int:
        from ..keypoints.coco import keypoint_results
        from ..keypoints.draw import draw_keypoints

        image = _read(f)
        inst = self.timed(self.predictor.predict, image)
        radius = max(2.0, min(image.shape[:2]) / 100)
        shown = draw_keypoints(image, inst.keypoints, self.predictor.skeleton, radius=radius) if self.overlay else None
        found = [{**r, "file_name": f.name} for r in keypoint_results(self.ids.get(f, len(self.ids) + 1), inst)]
        with held_interrupts():
            if shown is not None:
                save_png(self.out / f"{f.stem}_overlay.png", shown, protect=protect)
            self.results += found
            self.written += 1
        return image.shape[0] * image.shape[1]

    close = InstanceFiles.close
