"""Exports of a workbench project's labelled images (by default those marked "done"):

* :func:`export_coco`: one COCO instances JSON (masks as compressed RLE, overlaps kept).
* :func:`export_voc`: Pascal VOC's segmentation layout (Everingham et al., IJCV 2010)::

      JPEGImages/STEM.EXT            the image, copied as it is (whatever its format)
      SegmentationClass/STEM.png     palette PNG of class ids (0 background), the project's colours
      SegmentationObject/STEM.png    instance index 1..N in drawing order (palette PNG; 16-bit when N > 255)
      ImageSets/Segmentation/default.txt   the stems
      labelmap.txt                   "name:r,g,b::" per class, background first (as CVAT writes it)

  Where objects overlap, the later one wins (as in the project's label PNGs); VOC's 255 "void" border is
  not drawn.
* :func:`export_yolo`: the YOLO-seg layout (Ultralytics)::

      images/STEM.EXT                the image, copied
      labels/STEM.txt                "CLASS x1 y1 x2 y2 ..." per object, normalised to [0, 1]
      data.yaml                      path, train/val (both: images), names (a list, in class order)

  CLASS is the class's index in the project's class list (0-based); each object is ONE polygon with its
  holes and parts joined by zero-width cuts (:mod:`seglab.workbench.polygons`).

Every export is atomic: a file by temp file + rename; a folder is built beside the target and renamed
into place, replacing an earlier export of the same kind (never any other folder, never one of the
project's own folders).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import OutputError
from ..io.atomic import atomic_write
from . import coco, objects as objs
from .classes import palette
from .polygons import mask_to_polygon

MARKER = ".seglab-export"


def _check_target(project, out: Path) -> Path:
    out = Path(out).absolute()
    real = Path(os.path.realpath(out))
    own = [project.root / "images", project.labels_dir, project.dot]  # (images in ROOT itself: only files count)
    if real == project.root or project.root.is_relative_to(real):
        raise OutputError(f"{out}: an export cannot replace the project folder or a folder above it")
    for d in own:
        if real == d or real.is_relative_to(d):
            raise OutputError(f"{out}: inside the project's own {d.name}/ folder; export somewhere else")
    return out


@contextlib.contextmanager
def _atomic_folder(out: Path, kind: str):
    """Yield a fresh folder beside ``out``; on success it replaces ``out`` (an earlier ``kind`` export or an
    empty folder); on failure it is removed and ``out`` is untouched."""
    if out.exists():
        if not out.is_dir() or out.is_symlink():
            raise OutputError(f"{out}: exists and is not a folder")
        marker = out / MARKER
        if any(out.iterdir()) and not (marker.is_file() and marker.read_text().strip() == kind):
            raise OutputError(f"{out}: exists and is not an earlier {kind} export of seglab; choose a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        (tmp / MARKER).write_text(kind + "\n")
        os.chmod(tmp, 0o777 & ~_umask())
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.replace(out, old / "x")
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    from ..io.atomic import _umask as umask

    return umask()


def _selected(project, states) -> list[dict]:
    return project.snapshot(tuple(states))


def export_coco(project, path, *, states=("done",)) -> Path:
    """Write the COCO instances JSON of the images in ``states`` to ``path``; the path."""
    path = _check_target(project, Path(path))
    if Path(os.path.realpath(path)) == project.coco_path:
        raise OutputError(f"{path}: is the project's live annotations.json; export to another file")
    metas = _selected(project, states)
    text = coco.document_text([coco.fragment(m) for m in metas], project.classes)
    return atomic_write(path, text)


def _write_png(path: Path, labels: np.ndarray, pal=None) -> None:
    from PIL import Image

    if pal is not None:
        im = Image.fromarray(labels.astype(np.uint8), mode="P")
        im.putpalette(np.asarray(pal, dtype=np.uint8).ravel().tolist())
    else:
        im = Image.fromarray(labels.astype(np.uint16))
    im.save(path, format="PNG")


def export_voc(project, out_dir, *, states=("done",)) -> Path:
    """Write the VOC-style folder (see the module docstring) of the images in ``states``; the folder."""
    from ..io.visualize import label_colors

    out = _check_target(project, Path(out_dir))
    metas = _selected(project, states)
    classes = project.classes
    pal = palette(classes)
    obj_pal = label_colors(256)
    with _atomic_folder(out, "voc") as tmp:
        for d in ("JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"):
            (tmp / d).mkdir(parents=True)
        for m in metas:
            src = project.root / m["file"]
            shutil.copy2(src, tmp / "JPEGImages" / src.name)
            records = [dict(r, id=k + 1) for k, r in enumerate(m["objects"])]  # VOC: index in drawing order
            inst, sem = objs.label_maps(records, m["height"], m["width"])
            _write_png(tmp / "SegmentationClass" / f"{m['image']}.png", sem, pal)
            _write_png(tmp / "SegmentationObject" / f"{m['image']}.png", inst,
                       obj_pal if len(records) <= 255 else None)
        (tmp / "ImageSets/Segmentation/default.txt").write_text("".join(m["image"] + "\n" for m in metas))
        lines = ["# label:color_rgb:parts:actions", "background:0,0,0::"]
        lines += [f"{c['name']}:{','.join(str(int(v)) for v in pal[c['id']])}::" for c in classes]
        (tmp / "labelmap.txt").write_text("\n".join(lines) + "\n")
    return out


def yolo_lines(meta: dict, classes: list[dict]) -> list[str]:
    """The YOLO-seg label lines of one image's sidecar (see the module docstring)."""
    index = {c["id"]: k for k, c in enumerate(classes)}
    h, w = meta["height"], meta["width"]
    out = []
    for r, mask in zip(meta["objects"], objs.masks(meta["objects"], h, w)):
        poly = mask_to_polygon(mask)
        if len(poly) < 3:
            continue
        xy = np.clip(poly / np.array([w, h], dtype=np.float64), 0.0, 1.0)
        out.append(f"{index[r['class_id']]} " + " ".join(f"{v:.6f}" for v in xy.ravel()))
    return out


def export_yolo(project, out_dir, *, states=("done",)) -> Path:
    """Write the YOLO-seg folder (see the module docstring) of the images in ``states``; the folder."""
    out = _check_target(project, Path(out_dir))
    metas = _selected(project, states)
    classes = project.classes
    with _atomic_folder(out, "yolo") as tmp:
        (tmp / "images").mkdir()
        (tmp / "labels").mkdir()
        for m in metas:
            src = project.root / m["file"]
            shutil.copy2(src, tmp / "images" / src.name)
            lines = yolo_lines(m, classes)
            (tmp / "labels" / f"{m['image']}.txt").write_text("".join(line + "\n" for line in lines))
        names = [c["name"] for c in classes]
        (tmp / "data.yaml").write_text(
            f"# YOLO-seg export of the seglab project {project.root.name}\npath: .\ntrain: images\nval: images\n"
            f"names: {json.dumps(names)}\n")
    return out
