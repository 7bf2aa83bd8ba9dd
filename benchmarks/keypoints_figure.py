"""The picture of docs/keypoints.md: (1) a coarse heatmap of a sub-pixel point decoded by argmax, argmax +
quadratic refinement and soft-argmax; (2) a DSB2018 val image with its nucleus centres and the blob_log
detections; (3) a skeleton drawn from a COCO-style person.

    python benchmarks/keypoints_figure.py            # writes docs/keypoints.png
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

from seglab.io import read_image, read_labels
from seglab.io.visualize import contact_sheet, save_png
from seglab.keypoints import (COCO_PERSON, argmax_decode, detect_blobs, draw_keypoints, draw_points,
                              instance_centroids, soft_argmax)

ROOT = Path(__file__).resolve().parents[1]


def heatmap_panel() -> np.ndarray:
    true = np.array([5.3, 3.7])
    i, j = np.mgrid[0:8, 0:10]
    logits = -((j + 0.5 - true[0]) ** 2 + (i + 0.5 - true[1]) ** 2) / (2 * 1.2 ** 2)
    hm = torch.from_numpy(logits)
    up = 24  # draw each cell as 24 x 24 pixels, coordinates scaled alike
    img = np.kron(np.exp(logits), np.ones((up, up)))
    out = draw_points(img, [true * up], color=(0, 255, 0), radius=5)
    for xy, color in ((argmax_decode(hm, None)[0], (255, 0, 0)), (argmax_decode(hm, "quadratic")[0], (255, 160, 0)),
                      (soft_argmax(hm), (0, 160, 255))):
        out = draw_points(out, [xy.numpy() * up], color=color, radius=3.5)
    return out


def nuclei_panel() -> np.ndarray:
    root = Path(os.environ.get("SEGLAB_DATA", ROOT.parent / "shared/data")) / "dsb2018"
    sid = json.loads((root / "split.json").read_text())["val"][1]
    img, lab = read_image(root / "images" / f"{sid}.png"), read_labels(root / "labels" / f"{sid}.png")
    centres, _ = instance_centroids(lab)
    found, _ = detect_blobs(img, min_sigma=4, max_sigma=14, threshold=0.05)
    out = draw_points(img, centres, color=(0, 255, 0), radius=3)
    return draw_points(out, found, color=(255, 0, 255), radius=2)


def skeleton_panel() -> np.ndarray:
    xy = np.array([[50, 20], [54, 16], [46, 16], [58, 18], [42, 18], [66, 36], [34, 36], [72, 56], [28, 56],
                   [74, 74], [26, 74], [60, 78], [40, 78], [62, 104], [38, 104], [64, 128], [36, 128]], float)
    v = np.full(17, 2.0)
    v[3] = 0  # an absent keypoint: neither it nor its bones are drawn
    return draw_keypoints(np.full((140, 100), 40, np.uint8), np.c_[xy, v][None], COCO_PERSON.skeleton, radius=3)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs/keypoints.png")
    args = ap.parse_args(argv)
    sheet = contact_sheet([heatmap_panel(), nuclei_panel(), skeleton_panel()],
                          ["green truth, red argmax,\norange quadratic, blue soft-argmax",
                           "DSB2018 val: green centres,\nmagenta blob_log", "COCO person skeleton"],
                          ncols=3, tile_height=220, caption_height=30)
    save_png(args.out, sheet)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
