"""Mock galaxy images: one galaxy's latent parameters to an 8-bit RGB stamp.

GalSim draws the bulge (Sersic), the inclined exponential disk, merger companions and tidal plumes
in Fourier space, numpy adds the patterned light (log-spiral arms, a boxy bar, tidal tails,
stars, satellite trails), everything is convolved with the GalSim Moffat (+ pixel) PSF, GalSim
adds Gaussian sky noise and an asinh stretch maps it to 8 bits. :func:`render_chunk` writes a
batch of them as PNG files (the survey's worker).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import galsim
import numpy as np
from PIL import Image
from scipy import fft as sp_fft

from zooflow.mock.config import MockSurveyConfig
from zooflow.mock.streams import STREAM_RENDER, galaxy_rng

_ELLIPTICAL_SERSIC_N = 4.0
_BULGE_SERSIC_N = 2.5

# RGB weights of each light component: old stars red, young (disk, arms) blue.
_COLOUR_BULGE = np.array([1.25, 0.95, 0.62], dtype=np.float32)
_COLOUR_DISK = np.array([0.85, 0.95, 1.15], dtype=np.float32)
_COLOUR_ARMS = np.array([0.62, 0.88, 1.45], dtype=np.float32)
_COLOUR_BAR = np.array([1.15, 0.95, 0.72], dtype=np.float32)
_COLOUR_TIDAL = np.array([0.95, 0.95, 1.0], dtype=np.float32)
_COLOUR_TRAIL = np.array([1.0, 1.0, 1.0], dtype=np.float32)


@dataclass(frozen=True)
class _Geometry:
    """Per-(config) constants of the renderer, built once per process."""

    size: int  # stamp pixels per side
    fft_size: int  # periodic Fourier grid: 1.5x the stamp, so wrapped light lands >= 1 stamp out
    centre: int  # stamp pixel holding the galaxy centre
    k_bounds: galsim.BoundsI
    k_scale: float
    psf_k: np.ndarray  # PSF x pixel response on the rfft2 grid
    x: np.ndarray  # stamp pixel coordinates (arcsec) relative to the centre, (size, size)
    y: np.ndarray
    wrap: np.ndarray  # stamp index -> periodic grid index


@lru_cache(maxsize=4)
def _geometry(size: int, pixel_scale: float, psf_fwhm: float, psf_beta: float) -> _Geometry:
    # Light wraps around the periodic grid: anything more than one stamp width from the centre
    # (>= 3.3 capped half-light radii) reappears at the far edge, where it is negligible.
    fft_size = sp_fft.next_fast_len(size + (size + 1) // 2)
    fft_size += fft_size % 2
    k_bounds = galsim.BoundsI(0, fft_size // 2, -fft_size // 2, fft_size // 2 - 1)
    k_scale = 2 * np.pi / (fft_size * pixel_scale)
    psf = galsim.Convolve(galsim.Moffat(beta=psf_beta, fwhm=psf_fwhm), galsim.Pixel(pixel_scale))
    centre = size // 2
    coords = ((np.arange(size) - centre) * pixel_scale).astype(np.float32)
    x, y = np.meshgrid(coords, coords)
    return _Geometry(
        size=size,
        fft_size=fft_size,
        centre=centre,
        k_bounds=k_bounds,
        k_scale=k_scale,
        psf_k=_draw_k(psf, k_bounds, k_scale),
        x=x,
        y=y,
        wrap=(np.arange(size) - centre) % fft_size,
    )


def _draw_k(profile: galsim.GSObject, bounds: galsim.BoundsI, scale: float) -> np.ndarray:
    """GalSim's Fourier transform of ``profile`` on the half plane, in ``scipy.fft.rfft2`` order.

    Both use ``F(k) = sum f(x) exp(-i k.x)``, so ``irfft2`` of it gives flux per pixel with the
    profile centred on periodic pixel (0, 0).
    """
    image = galsim.ImageCF(bounds, scale=scale)
    profile.drawKImage(image=image, recenter=False)
    return np.fft.ifftshift(image.array, axes=0)


def _rotated(geo: _Geometry, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Stamp coordinates along (u) and across (v) a direction at ``angle_deg`` from +x."""
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    return geo.x * c + geo.y * s, -geo.x * s + geo.y * c


def _arms(row: dict[str, Any], geo: _Geometry, disk_flux: float) -> np.ndarray | None:
    """Log-spiral redistribution of disk light, (3, n, n) flux per pixel before the PSF.

    In the disk plane the arm pattern is ``((1 + cos(m (theta - ln(R / r_s) / tan(pitch)) -
    phase)) / 2)^4`` (mean 35/128). Arms take a fraction ``strength * (1 - exp(-(R/R_in)^2))`` of the
    exponential disk's light ``I(R)`` and re-emit it, bluer, along the pattern.
    """
    scale_radius = row["half_light_radius_arcsec"] / 1.6783
    pixel = geo.x[0, 1] - geo.x[0, 0]
    if scale_radius < 0.5 * pixel or disk_flux <= 0:
        return None  # far below the PSF: nothing to pattern
    u, v = _rotated(geo, row["position_angle_deg"])
    q = row["disk_axis_ratio"]
    radius = np.hypot(u, v / q) + 1e-3 * pixel
    theta = np.arctan2(v / q, u)
    m = row["n_arms"]
    phase = m * (
        theta - np.log(radius / scale_radius) / math.tan(math.radians(row["arm_pitch_deg"]))
    )
    pattern = (0.5 + 0.5 * np.cos(phase - math.radians(row["arm_phase_deg"]))) ** 4 / (35 / 128)
    inner = max(row["bar_length_arcsec"], 0.6 * scale_radius)
    taper = row["arm_strength"] * (1 - np.exp(-((radius / inner) ** 2)))
    disk = disk_flux * pixel**2 / (2 * np.pi * scale_radius**2 * q) * np.exp(-radius / scale_radius)
    moved = taper * disk
    return moved[None] * (_COLOUR_ARMS[:, None, None] * pattern[None] - _COLOUR_DISK[:, None, None])


def _bar(row: dict[str, Any], geo: _Geometry, bar_flux: float) -> np.ndarray:
    """A boxy Ferrers-like bar ``(1 - m^2)^2``, ``m^c = |x/a|^c + |y/b|^c``, projected on the sky.

    Seen edge-on its vertical thickness makes it the boxy/peanut bulge volunteers report.
    """
    cos_i = math.cos(math.radians(row["inclination_deg"]))
    sin_i = math.sqrt(max(0.0, 1 - cos_i**2))
    phi = math.radians(row["bar_angle_deg"])
    length = row["bar_length_arcsec"]
    # Bar axis in the disk plane, projected: the minor-axis component shrinks by cos(i).
    along = math.atan2(math.sin(phi) * cos_i, math.cos(phi))
    half_length = length * math.hypot(math.cos(phi), math.sin(phi) * cos_i)
    width_face = 0.28 * length * math.hypot(math.sin(phi), math.cos(phi) * cos_i)
    half_width = math.hypot(width_face, 0.4 * length * sin_i)
    boxiness = 2.5 + 1.5 * sin_i
    pixel = geo.x[0, 1] - geo.x[0, 0]
    half_length, half_width = max(half_length, 0.7 * pixel), max(half_width, 0.7 * pixel)
    u, v = _rotated(geo, row["position_angle_deg"] + math.degrees(along))
    m = (np.abs(u / half_length) ** boxiness + np.abs(v / half_width) ** boxiness) ** (1 / boxiness)
    profile = np.where(m < 1, (1 - np.minimum(m, 1) ** 2) ** 2, 0.0)
    total = profile.sum()
    if total <= 0:
        return np.zeros((3, geo.size, geo.size))
    return _COLOUR_BAR[:, None, None] * (bar_flux * profile / total)[None]


def _tidal_tails(row: dict[str, Any], geo: _Geometry, flux: float, n_tails: int) -> np.ndarray:
    """Faint curved streams from 1 to ~4 half-light radii, strongest on one side."""
    r_half = row["half_light_radius_arcsec"]
    radius = np.hypot(geo.x, geo.y) + 1e-6
    theta = np.arctan2(geo.y, geo.x)
    start = math.radians(row["disturbance_angle_deg"])
    tails = np.zeros_like(radius)
    for t in range(n_tails):
        # The stream's angle grows slowly with ln(radius): pitch 60 degrees, far more open than
        # spiral arms, and the second tail is fainter, so tails do not read as arms.
        centre_angle = start + t * math.pi + np.log(radius / r_half) / math.tan(math.radians(60))
        offset = np.angle(np.exp(1j * (theta - centre_angle)))
        weight = 1.0 if t == 0 else 0.35
        tails += weight * np.exp(-0.5 * (offset / 0.2) ** 2) * np.exp(-radius / (1.5 * r_half))
    tails *= (radius > 0.8 * r_half) * (radius < 4.5 * r_half)
    total = tails.sum()
    if total <= 0:
        return np.zeros((3, geo.size, geo.size))
    return _COLOUR_TIDAL[:, None, None] * (flux * tails / total)[None]


def _star(row: dict[str, Any], geo: _Geometry) -> np.ndarray:
    """A bright star near the centre with diffraction spikes and a bleed trail (before PSF)."""
    out = np.zeros((3, geo.size, geo.size))
    flux = row["artifact_strength"]
    spread = 0.15 * geo.size
    col = int(np.clip(geo.centre + round(spread * row["artifact_offset"]), 0, geo.size - 1))
    angle = math.radians(row["artifact_angle_deg"])
    row_ = int(np.clip(geo.centre + round(spread * (angle / math.pi - 0.5)), 0, geo.size - 1))
    tint = np.array([1.0, 1.0, 1.0]) + 0.25 * np.array([1.0, 0.0, -1.0]) * math.cos(angle * 3)
    out[:, row_, col] += tint * flux
    idx = np.arange(geo.size)
    spike = 2e-3 * flux * np.exp(-np.abs(idx - col) / (0.12 * geo.size))
    out[:, row_, :] += tint[:, None] * spike[None]
    spike = 2e-3 * flux * np.exp(-np.abs(idx - row_) / (0.12 * geo.size))
    out[:, :, col] += tint[:, None] * spike[None]
    bleed = np.exp(-np.abs(idx - row_) / (0.04 * geo.size * math.log10(flux)))
    out[:, :, col] += tint[:, None] * (5e-3 * flux * bleed)[None]
    return out


def _trail(row: dict[str, Any], geo: _Geometry) -> np.ndarray:
    """A straight satellite trail of ``artifact_strength`` flux per unit length (pixels)."""
    pixel = geo.x[0, 1] - geo.x[0, 0]
    _, across = _rotated(geo, row["artifact_angle_deg"])
    distance_px = across / pixel - row["artifact_offset"] * 0.5 * geo.size
    line = row["artifact_strength"] * np.exp(-0.5 * (distance_px / 0.6) ** 2) / (0.6 * 2.5066)
    return _COLOUR_TRAIL[:, None, None] * line[None]


def render_galaxy(
    row: dict[str, Any], config: MockSurveyConfig, seed: int, index: int
) -> np.ndarray:
    """One galaxy's (size, size, 3) uint8 RGB image from its latent parameters.

    ``row`` is one record of :func:`sample_latents`; ``(seed, index)`` seed its noise.
    """
    with _one_openmp_thread():
        return _render(row, config, seed, index)


def _render(row: dict[str, Any], config: MockSurveyConfig, seed: int, index: int) -> np.ndarray:
    """Smooth components (GalSim, Fourier space) + patterned light (numpy, real space), times the
    PSF in Fourier space, back to pixels, plus GalSim sky noise, stretched to 8 bits."""
    geo = _geometry(config.image_size, config.pixel_scale, config.psf_fwhm, config.psf_moffat_beta)
    rng = galaxy_rng(seed, index, STREAM_RENDER)
    galsim_seed = int(rng.integers(1, 2**31 - 1))
    k_channels = np.zeros((3, *geo.psf_k.shape), dtype=np.complex64)
    pattern = np.zeros((3, geo.size, geo.size), dtype=np.float32)
    has_pattern = False

    def add_k(profile: galsim.GSObject, colour: np.ndarray) -> None:
        k = _draw_k(profile, geo.k_bounds, geo.k_scale)
        for channel in range(3):
            k_channels[channel] += np.float32(colour[channel]) * k

    flux = float(row["flux"])
    beta = row["position_angle_deg"] * galsim.degrees
    r_half = float(row["half_light_radius_arcsec"])
    smooth_like = row["morphology"] != "featured"
    bt = float(row["bulge_fraction"])
    state = row["merger_state"]
    if flux > 0:
        main_colour = _COLOUR_BULGE if smooth_like else _COLOUR_DISK
        plume_flux = {"minor-disturbance": 0.15, "major-disturbance": 0.2}.get(state, 0.0) * flux
        tail_flux = {"major-disturbance": 0.22, "merger": 0.1}.get(state, 0.0) * flux
        body = flux - plume_flux - tail_flux
        if bt > 0:
            n = _ELLIPTICAL_SERSIC_N if smooth_like else _BULGE_SERSIC_N
            bulge = galsim.Sersic(n, half_light_radius=row["bulge_half_light_radius_arcsec"])
            add_k(
                bulge.shear(q=row["bulge_axis_ratio"], beta=beta).withFlux(body * bt), _COLOUR_BULGE
            )
        disk_flux = body * (1 - bt)
        bar_flux = 0.45 * row["bar_strength"] * disk_flux
        if disk_flux > 0:
            disk = galsim.Exponential(half_light_radius=r_half, flux=disk_flux - bar_flux)
            add_k(disk.shear(q=row["disk_axis_ratio"], beta=beta), _COLOUR_DISK)
        if row["has_arms"]:
            arms = _arms(row, geo, disk_flux - bar_flux)
            if arms is not None:
                pattern += arms
                has_pattern = True
        if row["has_bar"]:
            pattern += _bar(row, geo, bar_flux)
            has_pattern = True
        angle = math.radians(row["disturbance_angle_deg"])
        if plume_flux > 0:
            # An off-centre lump of light makes the galaxy lopsided.
            offset = (0.7 if state == "minor-disturbance" else 0.9) * r_half
            plume = galsim.Exponential(half_light_radius=0.7 * r_half, flux=plume_flux)
            plume = plume.shear(q=0.6, beta=angle * galsim.radians)
            add_k(plume.shift(offset * math.cos(angle), offset * math.sin(angle)), main_colour)
        if state == "merger":
            ratio = float(row["companion_flux_ratio"])
            sep = float(row["companion_separation_arcsec"])
            if row["companion_is_disk"]:
                companion = galsim.Exponential(half_light_radius=r_half * math.sqrt(ratio))
                colour = _COLOUR_DISK
            else:
                companion = galsim.Sersic(
                    _ELLIPTICAL_SERSIC_N, half_light_radius=0.7 * r_half * math.sqrt(ratio)
                )
                colour = _COLOUR_BULGE
            companion = companion.shear(q=0.7, beta=(angle + 1.0) * galsim.radians)
            add_k(
                companion.withFlux(ratio * flux).shift(
                    sep * math.cos(angle), sep * math.sin(angle)
                ),
                colour,
            )
        if tail_flux > 0:
            pattern += _tidal_tails(row, geo, tail_flux, 2 if state == "major-disturbance" else 1)
            has_pattern = True
    kind = row["artifact_kind"]
    if kind == "star":
        pattern += _star(row, geo)
        has_pattern = True
    elif kind == "satellite-trail":
        pattern += _trail(row, geo)
        has_pattern = True

    if has_pattern:
        periodic = np.zeros((3, geo.fft_size, geo.fft_size), dtype=np.float32)
        periodic[:, geo.wrap[:, None], geo.wrap[None, :]] = pattern
        k_channels += sp_fft.rfft2(periodic)
    periodic = sp_fft.irfft2(k_channels * geo.psf_k[None], s=(geo.fft_size, geo.fft_size))
    image = periodic[:, geo.wrap[:, None], geo.wrap[None, :]]

    noise_sigma = config.sky_noise * (row["artifact_strength"] if kind == "noise" else 1.0)
    noise = np.empty(image.size)
    galsim.GaussianDeviate(galsim_seed, mean=0.0, sigma=noise_sigma).generate(noise)
    image += noise.reshape(image.shape).astype(np.float32)
    if kind == "noise":
        _corrupt(image, rng, config.sky_noise)
    return _stretch(image, config)


def _corrupt(image: np.ndarray, rng: np.random.Generator, sky_noise: float) -> None:
    """Bad data: striped read-out pattern and a dead (or saturated) block of rows."""
    size = image.shape[-1]
    stripes = rng.normal(0.0, 3.0 * sky_noise, size=(3, size, 1))
    image += stripes
    start = int(rng.integers(0, size))
    height = int(rng.integers(size // 8, size // 3 + 1))
    image[:, start : start + height, :] = 0.0 if rng.random() < 0.5 else 1e3 * sky_noise


def _stretch(image: np.ndarray, config: MockSurveyConfig) -> np.ndarray:
    """(3, n, n) fluxes -> (n, n, 3) uint8 by ``asinh(x / soft) / asinh(max / soft)``."""
    soft = config.stretch_softening * config.sky_noise
    top = math.asinh(config.stretch_maximum * config.sky_noise / soft)
    scaled = np.clip(np.arcsinh(image * np.float32(1 / soft)) * np.float32(1 / top), 0.0, 1.0)
    return np.rint(scaled * 255.0).astype(np.uint8).transpose(1, 2, 0).copy()


def render_chunk(
    images_dir: str, config_fields: dict[str, Any], seed: int, rows: list[tuple[int, str, dict]]
) -> int:
    """Worker: render and write the PNGs of one chunk of galaxies."""
    config = MockSurveyConfig(**config_fields)
    with _one_openmp_thread():
        for index, file_name, row in rows:
            rgb = _render(row, config, seed, index)
            # zlib level 1: 10% larger files than the default 6, a third less time.
            Image.fromarray(rgb).save(Path(images_dir) / file_name, format="PNG", compress_level=1)
    return len(rows)


@contextmanager
def _one_openmp_thread() -> Iterator[None]:
    """Run GalSim single-threaded: on arrays this small its OpenMP threads only fight over the
    cores (with other processes busy, a 64x64 noise field takes 15x longer)."""
    before = galsim.utilities.get_omp_threads()
    galsim.utilities.set_omp_threads(1)
    try:
        yield
    finally:
        galsim.utilities.set_omp_threads(before)
