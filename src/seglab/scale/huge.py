"""Images of any size (20000 x 20000 and beyond) predicted tile by tile, in memory bounded by the tile.

Each output tile (the *core*, ``tile`` pixels, aligned to the network's stride) is predicted from the core
and a *halo* of ``halo`` pixels around it, and only the core's labels are kept (centre-crop stitching,
the overlap-tile strategy of Ronneberger et al., U-Net, MICCAI 2015, Fig. 2). When the halo covers the
network's receptive field and every window starts on a multiple of the network's stride (so pooling grids
line up with the whole image's), each kept pixel sees exactly the inputs it sees in one untiled pass: the
labels equal untiled prediction (``tests/test_scale_huge.py`` checks it; floating-point sums of
differently sized convolutions can differ in the last bits, so a pixel whose two best classes tie within
~1e-6 could flip). :func:`receptive_radius` measures the field from the gradient of one output pixel;
networks with global context (DeepLabV3+'s image pooling, transformers) have no finite field: their tiled
result depends on the halo and is an approximation.

Memory: the input is read window by window when it is an uncompressed TIFF (memory-mapped per window,
then unmapped); other formats are decoded whole (the 8-bit image itself, 3 bytes a pixel) and the rest is
still per tile: class scores exist for one window at a time, and the labels go straight into a tiled,
compressed TIFF (``OUT/STEM.tif``, palette colours of the data set when there are at most 256 classes)
written from a generator, atomically.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import ParameterError

DEFAULT_TILE = 1024


def receptive_radius(model, in_channels: int = 3, probe: int = 512, probes: int = 4) -> int | None:
    """Pixels from an output pixel to the farthest input pixel it depends on, or None when it reaches the
    probe's border. Measured from the gradient of the centre output pixel, united over ``probes`` random
    ``probe x probe`` inputs of different scales (one input can leave ReLUs on some paths inactive and
    hide part of the field); 0 when no probe's output depends on any input pixel."""
    import torch

    gen = torch.Generator().manual_seed(0)
    c = probe // 2
    support = np.zeros((probe, probe), dtype=bool)
    for scale in np.logspace(-1, 1, probes):  # one at a time: memory of a single probe's activations
        x = (torch.randn(1, in_channels, probe, probe, generator=gen) * float(scale)).requires_grad_(True)
        with torch.enable_grad():
            model(x)[0, :, c, c].sum().backward()
        support |= (x.grad[0].abs().sum(0) > 0).numpy()
    ys, xs = np.nonzero(support)
    if ys.size == 0:
        return 0
    r = int(max(np.abs(ys - c).max(), np.abs(xs - c).max()))
    return None if r >= c - 1 else r


def model_stride(model) -> int:
    return int(getattr(model, "stride", 1) or 1)


def exact_halo(model, in_channels: int = 3) -> int | None:
    """The smallest multiple of the stride above the receptive radius; None for global context."""
    r = receptive_radius(model, in_channels)
    if r is None:
        return None
    s = model_stride(model)
    return int(math.ceil((r + 1) / s) * s)


def core_boxes(h: int, w: int, tile) -> list[tuple[int, int, int, int]]:
    """Row-major ``(y0, y1, x0, x1)`` of the output tiles of an ``h x w`` image."""
    th, tw = tile
    return [(y, min(y + th, h), x, min(x + tw, w)) for y in range(0, h, th) for x in range(0, w, tw)]


class ImageSource:
    """Windows of an image file: an uncompressed TIFF memory-mapped per window, else decoded once."""

    def __init__(self, path):
        self.path = Path(path)
        self._array = None
        self._map = self._tiff_map() if self.path.suffix.lower() in (".tif", ".tiff") else None
        if self._map is None:
            from PIL import Image

            from ..data.base import as_uint8_image
            from ..io import read_image

            limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # huge on purpose: no bomb check
            try:
                self._array = as_uint8_image(read_image(self.path), self.path)
            finally:
                Image.MAX_IMAGE_PIXELS = limit
            self.shape = self._array.shape
        else:
            shape = self._map[2]
            self.shape = tuple(shape) + ((1,) if len(shape) == 2 else ())

    def _tiff_map(self):
        import tifffile

        from ..errors import InputFileError

        try:
            with tifffile.TiffFile(self.path) as tif:
                page = tif.pages[0]
                contiguous = page.is_contiguous  # uncompressed, in one piece (older tifffile: (offset, size))
                where = contiguous[0] if isinstance(contiguous, tuple) else page.dataoffsets[0] if contiguous else None
                shape, dtype = page.shape, page.dtype
                ok = (where is not None and len(tif.pages) == 1 and page.planarconfig == 1 and len(shape) in (2, 3)
                      and dtype is not None)
        except Exception as exc:  # tifffile raises many types for broken files
            raise InputFileError(f"{self.path}: not a readable TIFF ({exc.__class__.__name__}: {exc})") from None
        return (int(where), np.dtype(dtype), shape) if ok else None

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """uint8 ``(y1 - y0) x (x1 - x0) x C`` (C = 1 or 3)."""
        if self._array is not None:
            return self._array[y0:y1, x0:x1]
        from ..data.base import as_uint8_image

        offset, dtype, shape = self._map
        mm = np.memmap(self.path, dtype=dtype, mode="r", offset=offset, shape=shape)
        try:
            window = np.array(mm[y0:y1, x0:x1])
        finally:
            del mm  # unmapped: the pages read do not stay in this process's memory
        return as_uint8_image(window, self.path)


def tile_probabilities(trained, source: ImageSource, tile, halo: int):
    """``((y0, y1, x0, x1), probabilities)`` of every output tile, row-major: class probabilities
    ``K x (y1 - y0) x (x1 - x0)`` of the core, predicted from the core and its halo."""
    from ..engine.evaluate import predict_image

    h, w = source.shape[:2]
    for y0, y1, x0, x1 in core_boxes(h, w, tile):
        wy0, wx0 = max(0, y0 - halo), max(0, x0 - halo)
        wy1, wx1 = min(h, y1 + halo), min(w, x1 + halo)
        prob = predict_image(trained, source.read(wy0, wy1, wx0, wx1), tile=None, resize=None)
        yield (y0, y1, x0, x1), prob[:, y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0]


def tile_labels(trained, source: ImageSource, tile, halo: int):
    """``((y0, y1, x0, x1), labels)`` of every output tile (the arg-max of :func:`tile_probabilities`)."""
    for box, prob in tile_probabilities(trained, source, tile, halo):
        yield box, prob.argmax(0)


def check_tile(tile, stride: int) -> tuple[int, int]:
    """A tile ``(h, w)`` whose sides are multiples of 16 (TIFF tiles) and of the network's stride."""
    th, tw = (int(tile), int(tile)) if np.isscalar(tile) else (int(tile[0]), int(tile[1]))
    step = 16 * stride // math.gcd(16, stride)
    if th % step or tw % step or th < step or tw < step:
        raise ParameterError(f"--tile for huge images must be a positive multiple of {step} (16 for TIFF tiles "
                             f"and the network's stride {stride}); got {th}x{tw}")
    return th, tw


class HugeFiles:
    """The writer of ``seglab predict --huge``: ``OUT/STEM.tif``, the label map written tile by tile."""

    def __init__(self, trained, out: Path, tile=DEFAULT_TILE, halo: int | None = None):
        self.trained, self.out = trained, Path(out)
        stride = model_stride(trained.model)
        self.tile = check_tile(tile or DEFAULT_TILE, stride)
        if halo is None:
            halo = exact_halo(trained.model, trained.info.in_channels)
            if halo is None:
                raise ParameterError(f"{trained.path}: the network sees the whole image (global context), so no "
                                     "halo makes tiles exact; give --halo (e.g. 256) to accept an approximation")
        if halo < 0 or halo % stride:
            raise ParameterError(f"--halo must be a multiple of the network's stride {stride} (>= 0); got {halo}")
        self.halo = int(halo)
        k = trained.info.num_classes
        self.dtype = np.uint8 if k <= 256 else np.uint16
        self.seconds = 0.0

    def outputs(self, files) -> list[tuple[Path, Path]]:
        return [(self.out / f"{Path(f).stem}.tif", f) for f in files]

    def write(self, f: Path, protect=()) -> int:
        """Predict ``f`` tile by tile into ``OUT/STEM.tif``; returns its number of pixels."""
        import time

        import tifffile

        from ..io.atomic import atomic_path

        source = ImageSource(f)
        h, w = source.shape[:2]
        th, tw = self.tile

        def tiles():
            for (y0, y1, x0, x1), labels in tile_labels(self.trained, source, self.tile, self.halo):
                full = np.zeros((th, tw), self.dtype)  # TIFF tiles at the edges are padded to the tile size
                full[:y1 - y0, :x1 - x0] = labels
                yield full

        extra = {}
        if self.dtype == np.uint8:
            cmap = np.zeros((3, 256), np.uint16)
            pal = np.asarray(self.trained.info.palette, np.uint16)[:256]
            cmap[:, :len(pal)] = pal.T * 257
            extra = dict(photometric="palette", colormap=cmap)
        t0 = time.perf_counter()
        path = self.out / f"{Path(f).stem}.tif"
        with atomic_path(path, protect=protect) as tmp:
            tifffile.imwrite(tmp, tiles(), shape=(h, w), dtype=self.dtype, tile=(th, tw), compression="zlib",
                             bigtiff=h * w * np.dtype(self.dtype).itemsize > 2 ** 31, **extra)
        self.seconds += time.perf_counter() - t0
        return h * w

    def close(self, protect=()) -> list[Path]:
        return []
