"""Decoding galaxy images into one predictable form: 8-bit RGB arrays.

Survey cutouts arrive as 8- or 16-bit, greyscale, RGB, RGBA or palette PNG/JPG. Ingest uses
:func:`image_problem` to reject files that cannot be read; preprocessing uses
:func:`decode_image` so that every accepted oddity (16-bit, alpha, wrong size) is converted
deliberately rather than by whatever Pillow happens to do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError


class ImageDecodeError(ValueError):
    """An image file that exists but cannot be decoded."""


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale integer or float pixel arrays to 0..255 by their type's full range."""
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.integer):
        # 16-bit (and 32-bit 'I') images: map the type's range, not the image's, so that faint
        # galaxies stay faint instead of being stretched to full scale.
        top = 65535.0 if array.max(initial=0) <= 65535 else float(np.iinfo(array.dtype).max)
        return np.clip(np.rint(array.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)
    scaled = np.nan_to_num(array.astype(np.float64), nan=0.0)
    if scaled.max(initial=0.0) <= 1.0:
        scaled = scaled * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def decode_image(path: str | Path) -> np.ndarray:
    """Read an image file as an (H, W, 3) uint8 RGB array.

    16-bit images are scaled to 8 bits, alpha is dropped (cutouts carry no transparency
    worth keeping), greyscale and palette images are expanded to three equal channels.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                grey = _to_uint8(np.asarray(img))
                return np.repeat(grey[:, :, None], 3, axis=2)
            array = np.asarray(img)
            if array.dtype != np.uint8:  # e.g. 16-bit RGB(A) decoded by newer Pillow
                array = _to_uint8(array)
                if array.ndim == 2:
                    return np.repeat(array[:, :, None], 3, axis=2)
                return np.ascontiguousarray(array[:, :, :3])
            return np.asarray(img.convert("RGB"))
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageDecodeError(f"{path}: cannot decode image ({err})") from err


def image_problem(path: str | Path) -> str | None:
    """Why an image cannot be used, or None when it decodes."""
    path = Path(path)
    if not path.exists():
        return "image file missing"
    if not path.is_file():
        return "image path is not a file"
    if path.stat().st_size == 0:
        return "image file is empty (0 bytes)"
    try:
        decode_image(path)
    except ImageDecodeError as err:
        return f"image does not decode: {err.__cause__}"
    return None
