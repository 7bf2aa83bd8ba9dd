"""The picture of docs/instance.md and the README: DSB2018 test images with their true nuclei and those
of the classical baseline (Otsu + distance-transform watershed, the parameters tuned on val in
docs/results/instance.json), one colour and outline per object, the image's challenge score above.

    python benchmarks/instance_figure.py            # writes docs/instance.png
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from seglab.engine.predict_files import instance_overlay
from seglab.instance import classical_labels
from seglab.io import read_image, read_labels
from seglab.io.visualize import contact_sheet, save_png
from seglab.metrics.instance import challenge_score

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs/instance.png")
    ap.add_argument("--images", type=int, default=3, help="test images shown (the first of each kind of staining)")
    args = ap.parse_args(argv)
    root = Path(os.environ.get("SEGLAB_DATA", ROOT.parent / "shared/data")) / "dsb2018"
    params = json.loads((ROOT / "docs/results/instance.json").read_text())["methods"]["classical"]["params"]
    ids = json.loads((root / "split.json").read_text())["test"]
    tiles, captions, seen = [], [], set()
    for sid in ids:
        img = read_image(root / "images" / f"{sid}.png")
        kind = (img.ndim == 3 and img.shape[2] == 3 and float(np.ptp(img[..., :3].astype(int).mean(2) - img[..., 0])) > 10,
                float(img.mean()) > 127)  # colour-stained vs gray, bright vs dark background
        if kind in seen:
            continue
        seen.add(kind)
        true = read_labels(root / "labels" / f"{sid}.png").astype(np.int64)
        pred = classical_labels(img, **params)
        score = float(np.mean(challenge_score(true, pred)))
        rgb = img if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2)
        tiles += [rgb[..., :3], instance_overlay(rgb[..., :3], true), instance_overlay(rgb[..., :3], pred)]
        captions += [f"DSB2018 test {sid[:8]}", f"truth: {int(true.max())} nuclei",
                     f"classical: {len(np.unique(pred)) - 1} found, challenge {score:.2f}"]
        if len(seen) == args.images:
            break
    sheet = contact_sheet(tiles, captions, ncols=3, tile_height=220, caption_height=22)
    save_png(args.out, sheet)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
