"""``seglab demo``: every classical method on scikit-image's sample images, side by side.

Writes ``contact_sheet.png`` (one row per method, one column per image), ``overview.png`` (every method on
one image), one overlay PNG per result in ``tiles/``, ``results.json`` and ``index.html`` with each method's
parameters and time per image.
"""
from __future__ import annotations

import html
import json
import time
from pathlib import Path

import numpy as np

from .classical.registry import methods, get_method, segment
from .io import atomic_write, contact_sheet, overlay, save_png

DEMO_IMAGES = ("coins", "astronaut", "coffee")
MAX_SIDE = 256
OVERVIEW_IMAGE = "astronaut"


def demo_images() -> dict[str, np.ndarray]:
    """scikit-image's sample images, downscaled so that the longer side is at most ``MAX_SIDE``."""
    import skimage.data
    from skimage.transform import resize

    out = {}
    for name in DEMO_IMAGES:
        img = getattr(skimage.data, name)()
        h, w = img.shape[:2]
        s = MAX_SIDE / max(h, w)
        if s < 1:
            img = resize(img, (round(h * s), round(w * s)) + img.shape[2:], anti_aliasing=True,
                         preserve_range=True).astype(img.dtype)
        out[name] = img
    return out


def run_demo(out, only=None, console=None):
    """Run the demo into folder ``out``; returns the paths of the contact sheet and the HTML page."""
    from rich.progress import Progress

    out = Path(out)
    unattended = [m for m in methods() if not (m.prompts and m.prompts.required)]  # not sam: it needs prompts
    selected = [get_method(n) for n in only] if only else unattended
    images = demo_images()
    tiles, titles, rows = [], [], []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("demo", total=len(selected) * len(images))
        for m in selected:
            row = {"method": m.name, "family": m.family, "params": m.defaults(), "reference": m.reference,
                   "description": m.description, "results": []}
            for name, img in images.items():
                progress.update(task, description=f"{m.name} on {name}")
                t0 = time.perf_counter()
                labels = segment(img, m.name)
                dt = time.perf_counter() - t0
                ov = overlay(img, labels)
                tile = out / "tiles" / f"{m.name}_{name}.png"
                save_png(tile, ov)
                tiles.append(ov)
                titles.append(f"{m.name} / {name}\n{dt * 1000:.0f} ms, {len(np.unique(labels))} regions")
                row["results"].append({"image": name, "seconds": dt, "regions": int(len(np.unique(labels))),
                                       "tile": str(tile.relative_to(out))})
                progress.advance(task)
            rows.append(row)
    sheet_path = save_png(out / "contact_sheet.png", contact_sheet(tiles, titles, ncols=len(images)))
    # One image, every method, in a compact grid (the picture in the README).
    k = list(images).index(OVERVIEW_IMAGE) if OVERVIEW_IMAGE in images else 0
    save_png(out / "overview.png", contact_sheet(tiles[k::len(images)], [t.split(" / ")[0] for t in titles[k::len(images)]],
                                                 ncols=5, tile_height=140, caption_height=14))
    atomic_write(out / "results.json", json.dumps(rows, indent=2, default=str))
    page = atomic_write(out / "index.html", _html(rows, list(images)))
    return sheet_path, page


def _html(rows, image_names) -> str:
    head = "".join(f"<th>{html.escape(n)}</th>" for n in image_names)
    body = []
    for r in rows:
        params = ", ".join(f"{k}={v!r}" for k, v in r["params"].items() if not isinstance(v, np.ndarray))
        cells = "".join(
            f'<td><img src="{html.escape(x["tile"])}" height="160"><br>{x["seconds"] * 1000:.0f} ms, '
            f'{x["regions"]} regions</td>' for x in r["results"])
        body.append(f"<tr><td><b>{html.escape(r['method'])}</b><br><i>{html.escape(r['family'])}</i><br>"
                    f"{html.escape(r['description'])}<br><small>{html.escape(params)}<br>"
                    f"{html.escape(r['reference'])}</small></td>{cells}</tr>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>seglab demo</title>"
            "<style>body{font-family:sans-serif}td{vertical-align:top;padding:4px;max-width:340px}"
            "table{border-collapse:collapse}tr{border-bottom:1px solid #ccc}</style></head><body>"
            "<h1>seglab demo: every classical method</h1><p>Default parameters; times are wall-clock "
            "seconds on this machine.</p><p><img src='contact_sheet.png' width='100%'></p>"
            f"<table><tr><th>method</th>{head}</tr>{''.join(body)}</table></body></html>")
