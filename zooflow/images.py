"""Decoding galaxy images into one predictable form: 8-bit RGB arrays.

Survey cutouts arrive as 8- or 16-bit, greyscale, RGB, RGBA or palette PNG/JPG, or as FITS
(``.fits``, ``.fit``, ``.fits.gz``, ``.fits.fz``) holding calibrated fluxes. Ingest uses
:func:`image_problem` to reject files that cannot be read; preprocessing uses
:func:`decode_image` so that every accepted oddity (16-bit, alpha, wrong size) is converted
deliberately rather than by whatever Pillow happens to do.

FITS fluxes become 8-bit pixels through a display stretch, band by band (see
:func:`stretch_bands`): the sky level (median) is subtracted, the flux is expressed in units of
the sky noise σ (1.4826 × the median absolute deviation), and then

* ``arcsinh`` (default): ``asinh(x / softening)``, linear for faint light (a few σ) and
  logarithmic for bright cores, as survey colour cutouts (e.g. DECaLS') are made;
* ``linear``: ``x`` itself;

and the result is scaled so that 0 (the sky) is black and the band's 99.5th percentile is
white. The first HDU with a 2-D image or a 3-D cube is read: one band becomes grey; a cube of
three bands is taken in increasing wavelength (g, r, z for DECaLS) and shown as blue, green,
red. Other band counts are refused.
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


FITS_SUFFIXES = (".fits", ".fit", ".fits.gz", ".fit.gz", ".fits.fz")
FITS_STRETCHES = ("arcsinh", "linear")
# The band value shown as white: a high percentile, so one bright star does not darken the rest.
_WHITE_PERCENTILE = 99.5


def is_fits(path: str | Path) -> bool:
    return str(path).lower().endswith(FITS_SUFFIXES)


def read_fits_bands(path: str | Path) -> np.ndarray:
    """(bands, H, W) float64 fluxes of the first image HDU of a FITS file (1 or 3 bands)."""
    import warnings

    from astropy.io import fits
    from astropy.utils.exceptions import AstropyUserWarning

    # astropy only warns about a truncated file, then fails on a reshape; say what it is.
    with warnings.catch_warnings():
        warnings.simplefilter("error", AstropyUserWarning)
        try:
            with fits.open(path, memmap=False) as hdus:
                for hdu in hdus:
                    if hdu.data is not None and getattr(hdu.data, "ndim", 0) in (2, 3):
                        data = np.asarray(hdu.data, dtype=np.float64)
                        break
                else:
                    raise ValueError("no 2-D image or 3-D cube in any HDU")
        except AstropyUserWarning as warning:
            raise ValueError(str(warning)) from None
    bands = data[None] if data.ndim == 2 else data
    if bands.shape[0] not in (1, 3):
        raise ValueError(
            f"a cube of {bands.shape[0]} bands (shape {data.shape}); expected one band or three"
        )
    if not np.isfinite(bands).any():
        raise ValueError("every pixel is NaN or infinite")
    return bands


def check_stretch(stretch: str, softening: float) -> None:
    if stretch not in FITS_STRETCHES:
        raise ValueError(f"unknown FITS stretch {stretch!r}; choose one of {FITS_STRETCHES}")
    if not softening > 0:
        raise ValueError(f"the arcsinh softening must be positive, got {softening!r}")


def stretch_bands(
    bands: np.ndarray, stretch: str = "arcsinh", softening: float = 3.0
) -> np.ndarray:
    """(bands, H, W) fluxes -> (H, W, 3) uint8 RGB by the display stretch of the module docstring."""
    check_stretch(stretch, softening)
    shown = []
    for band in bands:
        finite = band[np.isfinite(band)]
        sky = np.median(finite)
        noise = 1.4826 * np.median(np.abs(finite - sky))
        if not noise > 0:  # a noiseless (simulated or masked) band: its spread instead
            noise = float(np.std(finite)) or 1.0
        x = np.nan_to_num((band - sky) / noise, nan=0.0, posinf=0.0, neginf=0.0)
        y = np.arcsinh(x / softening) if stretch == "arcsinh" else x
        white = np.percentile(y, _WHITE_PERCENTILE)
        scaled = np.clip(y / white, 0.0, 1.0) if white > 0 else np.zeros_like(y)
        shown.append(np.rint(scaled * 255).astype(np.uint8))
    planes = shown * 3 if len(shown) == 1 else shown[::-1]  # longest wavelength as red
    return np.stack(planes, axis=2)


def decode_image(
    path: str | Path, fits_stretch: str = "arcsinh", fits_softening: float = 3.0
) -> np.ndarray:
    """Read an image file as an (H, W, 3) uint8 RGB array.

    16-bit images are scaled to 8 bits, alpha is dropped (cutouts carry no transparency
    worth keeping), greyscale and palette images are expanded to three equal channels. FITS
    files go through the display stretch ``fits_stretch`` (module docstring).
    """
    path = Path(path)
    if is_fits(path):
        check_stretch(fits_stretch, fits_softening)
        if not path.exists():
            raise FileNotFoundError(path)
        try:
            return stretch_bands(read_fits_bands(path), fits_stretch, fits_softening)
        except (OSError, ValueError, TypeError, IndexError, KeyError) as err:
            raise ImageDecodeError(f"{path}: cannot decode FITS image ({err})") from err
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
