"""Cut every catalogue image down to the network's input: centre crop, resize, optional greyscale.

The result is one HDF5 file (``images`` uint8 ``(N, S, S, C)`` in catalogue row order, ``id_str``
alongside) that the shard writer reads. Decoding goes through :func:`zooflow.images.decode_image`
so 16-bit, RGBA, palette and greyscale files all arrive as 8-bit RGB first.
"""

from __future__ import annotations

import functools
import itertools
import logging
import multiprocessing
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from zooflow.atomic import atomic_path
from zooflow.catalogue import catalogue_length, iter_catalogue_columns
from zooflow.images import check_stretch, decode_image
from zooflow.runlog import Progress

log = logging.getLogger(__name__)

# Rows sent to a worker per task: large enough to hide inter-process overhead, small enough that
# the HDF5 writer sees results steadily.
_ROWS_PER_TASK = 32
# Rows gathered in memory before one HDF5 write.
_ROWS_PER_WRITE = 512
# Rows handed to the worker pool at once (see parallel_map).
_ITEMS_IN_FLIGHT = 4096


def _check_settings(image_size: int, crop_fraction: float) -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, int | np.integer):
        raise ValueError(f"image_size must be an integer, got {image_size!r}")
    if image_size < 1:
        raise ValueError(f"image_size must be at least 1 pixel, got {image_size}")
    if not (np.isfinite(crop_fraction) and 0.0 < crop_fraction <= 1.0):
        raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction!r}")


def prepare_image(
    rgb: np.ndarray, image_size: int, crop_fraction: float, greyscale: bool
) -> np.ndarray:
    """One decoded image -> the network input, uint8 ``(S, S, 1)`` or ``(S, S, 3)``.

    Steps, on an ``(H, W, 3)`` uint8 image of any size:

    1. centre crop a square of side ``round(crop_fraction * min(H, W))`` (at least 1 pixel);
    2. resize it to ``S = image_size`` with Pillow's Lanczos filter, whose kernel widens with
       the reduction factor, so downsampling is anti-aliased (upsampling small inputs is too);
    3. if ``greyscale``, each pixel becomes the mean of its three channels (as W+20),
       ``grey = round((R + G + B) / 3)``, taken after the resize (the two commute up to rounding).
    """
    _check_settings(image_size, crop_fraction)
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(
            f"prepare_image expects an (H, W, 3) uint8 RGB array, got {rgb.dtype} {rgb.shape}"
        )
    height, width = rgb.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"prepare_image got an empty image of shape {rgb.shape}")
    side = max(1, int(round(crop_fraction * min(height, width))))
    top, left = (height - side) // 2, (width - side) // 2
    # Crop by slicing, not Pillow's `box`, whose filter would reach past the crop's edges.
    crop = np.ascontiguousarray(rgb[top : top + side, left : left + side])
    resized = Image.fromarray(crop).resize(
        (image_size, image_size), resample=Image.Resampling.LANCZOS
    )
    colour = np.asarray(resized)
    if not greyscale:
        return colour
    # Integer form of round(sum / 3): sums are whole numbers, so thirds never tie at .5.
    channel_sum = colour.sum(axis=2, dtype=np.uint16, keepdims=True)
    return ((channel_sum + 1) // 3).astype(np.uint8)


def prepare_file(
    path: str | Path,
    image_size: int,
    crop_fraction: float,
    greyscale: bool,
    fits_stretch: str = "arcsinh",
    fits_softening: float = 3.0,
) -> np.ndarray:
    """:func:`prepare_image` of a decoded image file (see :func:`zooflow.images.decode_image`,
    which also says how FITS fluxes are stretched)."""
    rgb = decode_image(path, fits_stretch=fits_stretch, fits_softening=fits_softening)
    return prepare_image(rgb, image_size, crop_fraction, greyscale)


def _prepare_row(
    task: tuple[int, str, str],
    image_size: int,
    crop_fraction: float,
    greyscale: bool,
    fits_stretch: str = "arcsinh",
    fits_softening: float = 3.0,
) -> tuple[str, np.ndarray]:
    """(id_str, prepared image) of one catalogue row; the id travels back with the image so the
    writer needs no second copy of the catalogue's ids."""
    row, id_str, path = task
    try:
        return id_str, prepare_file(
            path, image_size, crop_fraction, greyscale, fits_stretch, fits_softening
        )
    except Exception as err:
        # The worker's traceback is lost across processes: say which galaxy failed, and why.
        raise ValueError(
            f"catalogue row {row} (id_str {id_str!r}, file {path}): {type(err).__name__}: {err}"
        ) from None


def worker_kind() -> str:
    """``"process"`` where forked worker processes are safe, else ``"thread"``.

    Forked processes are the fast choice: decoding and resizing small images is mostly
    Python-level work under the GIL, and on 2 cores a thread pool gained under 10% where forked
    processes nearly doubled throughput (benchmarks/shard_throughput.py --compare-pools).
    They are only safe on Linux before TensorFlow is imported: TensorFlow starts native thread
    pools, and a forked child can deadlock on a lock one of them held. The alternatives that
    avoid fork (spawn, forkserver) re-import the caller's ``__main__`` in every worker, which
    for a script that imported TensorFlow costs seconds per worker (and breaks unguarded
    scripts), so threads are used instead; Pillow still decodes and resamples without the GIL.
    Workflow scripts preprocess before anything imports TensorFlow and get processes.
    """
    if sys.platform.startswith("linux") and "tensorflow" not in sys.modules:
        return "process"
    return "thread"


def parallel_map(
    function: Callable, items: Iterable, threads: int, chunksize: int = _ROWS_PER_TASK
) -> Iterator:
    """``map(function, items)``, in order, over ``threads`` workers (in-process for 1).

    Workers are forked processes or threads as :func:`worker_kind` decides.
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    if threads == 1:
        yield from map(function, items)
        return
    if worker_kind() == "thread":
        pool, options = ThreadPoolExecutor(threads), {}
    else:
        pool = ProcessPoolExecutor(threads, mp_context=multiprocessing.get_context("fork"))
        options = {"chunksize": chunksize}
    items = iter(items)
    with pool:
        # pool.map submits everything it is given at once; windows keep the tasks in memory to
        # a few thousand whatever the survey's size.
        while window := list(itertools.islice(items, _ITEMS_IN_FLIGHT)):
            yield from pool.map(function, window, **options)


def _image_list(catalogue_path: str | Path) -> Iterator[tuple[int, str, str]]:
    """(row, id_str, file_loc) of every catalogue galaxy, read block by block."""
    blocks = iter_catalogue_columns(catalogue_path, ["id_str", "file_loc"])
    rows = itertools.chain.from_iterable(
        zip(block["id_str"].astype(str), block["file_loc"].astype(str), strict=True)
        for block in blocks
    )
    for row, (ident, file_loc) in enumerate(rows):
        yield row, ident, file_loc


def preprocess_catalogue(
    catalogue_path: str | Path,
    out_path: str | Path,
    *,
    image_size: int,
    crop_fraction: float,
    greyscale: bool,
    threads: int = 1,
    fits_stretch: str = "arcsinh",
    fits_softening: float = 3.0,
) -> None:
    """Prepare every catalogue image (:func:`prepare_image`) into one HDF5 file.

    Writes ``images`` uint8 ``(N, S, S, C)`` and ``id_str`` (UTF-8) in catalogue row order, with
    attributes ``image_size``, ``crop_fraction`` and ``greyscale``. Images are processed over
    ``threads`` worker processes and streamed to disk in blocks, so memory stays bounded. The
    file appears under ``out_path`` only when complete (written to a temporary name, renamed).
    """
    _check_settings(image_size, crop_fraction)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    channels = 1 if greyscale else 3
    n_images = catalogue_length(catalogue_path)
    check_stretch(fits_stretch, fits_softening)
    prepare = functools.partial(
        _prepare_row,
        image_size=image_size,
        crop_fraction=crop_fraction,
        greyscale=greyscale,
        fits_stretch=fits_stretch,
        fits_softening=fits_softening,
    )
    started = time.perf_counter()
    with atomic_path(out_path) as temporary:
        with h5py.File(temporary, "w") as h5:
            images = h5.create_dataset(
                "images", shape=(n_images, image_size, image_size, channels), dtype=np.uint8
            )
            ids = h5.create_dataset("id_str", shape=(n_images,), dtype=h5py.string_dtype("utf-8"))
            h5.attrs["image_size"] = int(image_size)
            h5.attrs["crop_fraction"] = float(crop_fraction)
            h5.attrs["greyscale"] = bool(greyscale)
            block: list[np.ndarray] = []
            block_ids: list[str] = []
            written = 0
            progress = Progress("preprocess", n_images, "images")
            tasks = _image_list(catalogue_path)
            for ident, image in progress.iterate(parallel_map(prepare, tasks, threads)):
                block.append(image)
                block_ids.append(ident)
                if len(block) == _ROWS_PER_WRITE:
                    images[written : written + len(block)] = np.stack(block)
                    ids[written : written + len(block)] = block_ids
                    written += len(block)
                    block, block_ids = [], []
            if block:
                images[written : written + len(block)] = np.stack(block)
                ids[written : written + len(block)] = block_ids
    elapsed = time.perf_counter() - started
    log.info(
        "prepared %d images to %dx%dx%d in %.1f s (%.0f images/s, %d %s workers) -> %s",
        n_images,
        image_size,
        image_size,
        channels,
        elapsed,
        n_images / max(elapsed, 1e-9),
        threads,
        worker_kind() if threads > 1 else "in-process",
        out_path,
    )
