"""Pictures of segmentations: colour overlays, boundary views and contact sheets (all uint8 RGB)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SeglabError
from .atomic import atomic_path
from .images import to_float_image


def label_colors(n: int) -> np.ndarray:
    """``n`` distinct RGB colours (uint8, n x 3), the Pascal VOC bit-interleaving palette; label 0 is black."""
    colors = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colors[i] = (r, g, b)
    return colors


def _rgb(image: np.ndarray) -> np.ndarray:
    f = to_float_image(image)
    if f.ndim == 2:
        f = np.repeat(f[..., None], 3, axis=2)
    return f


def _check_same_size(image: np.ndarray, labels: np.ndarray) -> None:
    if image.shape[:2] != labels.shape[:2]:
        raise SeglabError(f"label map of size {labels.shape[:2]} does not match image of size {image.shape[:2]}")


def find_boundaries(labels: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour has another label (a thin, one-sided boundary)."""
    b = np.zeros(labels.shape, dtype=bool)
    b[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    b[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return b


def overlay(image: np.ndarray, labels: np.ndarray, *, alpha: float = 0.45, boundaries: bool = True,
            boundary_color=(255, 255, 0), colors: np.ndarray | None = None) -> np.ndarray:
    """Blend a colour per label over the image, optionally drawing region boundaries; uint8 H x W x 3.

    Labels are coloured with :func:`label_colors` unless ``colors`` (K x 3 uint8) is given; negative labels
    (e.g. ignore) are left uncoloured.
    """
    labels = np.asarray(labels)
    _check_same_size(image, labels)
    if not 0.0 <= alpha <= 1.0:
        raise SeglabError(f"parameter 'alpha' must be in [0, 1], got {alpha}")
    rgb = _rgb(image)
    lab = labels.astype(np.int64)
    n = int(lab.max()) + 1 if lab.size else 1
    pal = (label_colors(max(n, 1)) if colors is None else np.asarray(colors, np.uint8)).astype(np.float32) / 255
    valid = lab >= 0
    col = np.zeros_like(rgb)
    col[valid] = pal[lab[valid] % len(pal)]
    a = np.where(valid, alpha, 0.0)[..., None]
    out = rgb * (1 - a) + col * a
    if boundaries:
        out[find_boundaries(lab)] = np.asarray(boundary_color, np.float32) / 255
    return (out * 255 + 0.5).astype(np.uint8)


def boundaries_view(image: np.ndarray, labels: np.ndarray, *, color=(255, 0, 0)) -> np.ndarray:
    """The image with region boundaries drawn in ``color``; uint8 H x W x 3."""
    labels = np.asarray(labels)
    _check_same_size(image, labels)
    out = (_rgb(image) * 255 + 0.5).astype(np.uint8)
    out[find_boundaries(labels)] = color
    return out


def _text_tile(text: str, width: int, height: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (width, height), (255, 255, 255))
    ImageDraw.Draw(im).multiline_text((4, 2), text, fill=(0, 0, 0), spacing=1)
    return np.asarray(im)


def contact_sheet(tiles: list[np.ndarray], titles: list[str] | None = None, *, ncols: int = 4,
                  tile_height: int = 200, caption_height: int = 28, pad: int = 4) -> np.ndarray:
    """Lay out images in a grid, each scaled to ``tile_height`` with its caption below; uint8 RGB."""
    from PIL import Image

    if not tiles:
        raise SeglabError("contact_sheet needs at least one tile")
    titles = titles or [""] * len(tiles)
    scaled = []
    for t in tiles:
        rgb = (_rgb(t) * 255 + 0.5).astype(np.uint8)
        h, w = rgb.shape[:2]
        new_w = max(1, round(w * tile_height / h))
        scaled.append(np.asarray(Image.fromarray(rgb).resize((new_w, tile_height), Image.NEAREST)))
    cell_w = max(s.shape[1] for s in scaled)
    ncols = max(1, min(ncols, len(tiles)))
    nrows = -(-len(tiles) // ncols)
    cell_h = tile_height + caption_height
    sheet = np.full((nrows * (cell_h + pad) + pad, ncols * (cell_w + pad) + pad, 3), 255, np.uint8)
    for k, (s, title) in enumerate(zip(scaled, titles)):
        r, c = divmod(k, ncols)
        y, x = pad + r * (cell_h + pad), pad + c * (cell_w + pad)
        sheet[y:y + tile_height, x:x + s.shape[1]] = s
        sheet[y + tile_height:y + cell_h, x:x + cell_w] = _text_tile(title, cell_w, caption_height)
    return sheet


def save_png(path, rgb: np.ndarray, *, protect=()) -> Path:
    """Write a uint8 image as PNG, atomically."""
    from PIL import Image

    path = Path(path)
    with atomic_path(path, protect=protect) as tmp:
        Image.fromarray(np.asarray(rgb, np.uint8)).save(tmp, format="PNG")
    return path
