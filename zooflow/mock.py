"""The embedded mock survey: GalSim-rendered galaxies and simulated volunteers walking the tree.

A user without internet access still gets a realistic Galaxy Zoo-like data set. Each galaxy has
latent parameters (morphology, redshift-like distance, bulge fraction, inclination, bar, spiral
arms, disturbance, artifacts). From them we

* render a colour image: GalSim draws the bulge (Sersic), the inclined exponential disk, merger
  companions and tidal plumes in Fourier space, numpy adds the patterned light (log-spiral arms, a
  boxy bar, tidal tails, stars, satellite trails), everything is convolved with the GalSim
  Moffat (+ pixel) PSF, GalSim adds Gaussian sky noise and an asinh stretch maps it to 8 bits;
* derive the *true* answer probabilities of every question from the same parameters and their
  *visibility* (resolution and surface brightness), so that what volunteers say is what the image
  shows: far-away galaxies shrink and fade, and volunteers answer "smooth", "no" or "cant-tell";
* let a DECaLS-like number of volunteers walk the decision tree: a root question is a multinomial
  draw with all volunteers, a child question a multinomial draw with exactly the volunteers who
  gave its parent answer.

Outputs in ``out_dir``: ``images/{id_str}.png``, ``catalogue.csv`` (what training reads) and
``truth.parquet`` (true fractions, P(asked) and latent parameters, for evaluation only).

Every random number of galaxy ``i`` comes from ``numpy.random.SeedSequence(seed,
spawn_key=(stream, i))``, so outputs are byte-identical for a seed whatever the number of worker
processes, and the first galaxies of a larger survey equal those of a smaller one.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import galsim
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from scipy import fft as sp_fft
from scipy import special

from zooflow.runlog import Progress
from zooflow.schema import Schema

# --- random streams: one SeedSequence per (stream, galaxy index) ---------------------------
_STREAM_LATENTS = 0
_STREAM_RENDER = 1
_STREAM_VOTES = 2
_N_LATENT_UNIFORMS = 32  # fixed per galaxy, so adding latents later keeps old galaxies stable

MORPHOLOGIES = ("smooth", "featured", "artifact")
ARTIFACT_KINDS = ("none", "star", "satellite-trail", "noise")
MERGER_STATES = ("none", "minor-disturbance", "major-disturbance", "merger")
WINDINGS = ("none", "tight", "medium", "loose")

# Pitch angle (degrees) limits between tight/medium and medium/loose arms.
_WINDING_EDGES_DEG = (15.0, 25.0)
# Probability of 1, 2, 3, 4, 5, 6 arms for a spiral.
_ARM_COUNT_PROBABILITIES = np.array([0.07, 0.50, 0.20, 0.11, 0.07, 0.05])
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
class MockSurveyConfig:
    """Every tunable of the mock survey; the field names are the keys under ``mock:`` in config.

    Survey and camera
        ``n_galaxies`` (1500), ``image_size`` (64 rendered pixels per side), ``pixel_scale``
        (0.262 arcsec/pixel, DECaLS), ``psf_fwhm`` (1.3 arcsec), ``psf_moffat_beta`` (3.5),
        ``sky_noise`` (1.0: Gaussian sigma per pixel; fluxes are in these units).
    Distance and size
        ``redshift_min`` / ``redshift_max`` (0.015 / 0.12, drawn log-uniformly): a redshift-like
        distance, not a cosmology. At redshift ``z`` a galaxy has half-light radius
        ``reference_half_light_radius * size * z_ref / z`` (2.0 arcsec, ``z_ref =
        reference_redshift`` = 0.05; capped at 0.3 of the stamp) and flux ``reference_flux *
        luminosity * (z_ref / z)**2 * ((1 + z_ref) / (1 + z))**4`` (8000), so it shrinks and its
        surface brightness dims. ``size`` and ``luminosity`` are log-normal with natural-log
        sigma ``size_scatter`` (0.25) and ``luminosity_scatter`` (0.4).
    Population
        ``smooth_fraction`` (0.45) and ``artifact_fraction`` (0.04) of all galaxies, the rest are
        featured (disks). ``bar_fraction`` (0.4) and ``spiral_fraction`` (0.7) of disks.
        ``minor_disturbance_fraction`` / ``major_disturbance_fraction`` / ``merger_fraction``
        (0.06 / 0.03 / 0.03) of galaxies. ``disk_thickness`` (0.12): axis ratio of an edge-on
        disk.
    Visibility
        ``feature_resolution`` (1.2): half-light radius / PSF FWHM at which the resolution term
        of visibility is 1/2, ``resolution**4 / (resolution**4 + feature_resolution**4)``;
        ``feature_surface_brightness`` (4.0): mean surface brightness inside the half-light
        radius, in sky-noise units per pixel, at which the brightness term is 1/2 (same form,
        squared). Visibility is their product.
    Volunteers
        With probability ``1 - volunteers_high_fraction`` (0.3) a galaxy gets a uniform integer
        in [``volunteers_low_min``, ``volunteers_low_max``] (5, 10) volunteers, otherwise
        ``round(Normal(volunteers_high_mean, volunteers_high_std))`` (40, 4) clipped to three
        sigma. ``volunteer_error`` (0.04): each answer's probability is
        ``(1 - volunteer_error) * p + volunteer_error / n_answers``, so none is 0 or 1.
    Image stretch
        Pixel value ``asinh(flux / stretch_softening) / asinh(stretch_maximum /
        stretch_softening)`` clipped to [0, 1] (2.0 and 400.0, in sky-noise units).
    """

    n_galaxies: int = 1500
    image_size: int = 64
    pixel_scale: float = 0.262
    psf_fwhm: float = 1.3
    psf_moffat_beta: float = 3.5
    sky_noise: float = 1.0
    redshift_min: float = 0.015
    redshift_max: float = 0.12
    reference_redshift: float = 0.05
    reference_half_light_radius: float = 2.0
    reference_flux: float = 8000.0
    size_scatter: float = 0.25
    luminosity_scatter: float = 0.4
    smooth_fraction: float = 0.45
    artifact_fraction: float = 0.04
    bar_fraction: float = 0.4
    spiral_fraction: float = 0.7
    minor_disturbance_fraction: float = 0.06
    major_disturbance_fraction: float = 0.03
    merger_fraction: float = 0.03
    disk_thickness: float = 0.12
    feature_resolution: float = 1.2
    feature_surface_brightness: float = 4.0
    volunteers_low_min: int = 5
    volunteers_low_max: int = 10
    volunteers_high_mean: float = 40.0
    volunteers_high_std: float = 4.0
    volunteers_high_fraction: float = 0.3
    volunteer_error: float = 0.04
    stretch_softening: float = 2.0
    stretch_maximum: float = 400.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            wants_int = f.type in ("int", int)
            ok = isinstance(value, int) if wants_int else isinstance(value, int | float)
            if isinstance(value, bool) or not ok:
                kind = "an integer" if wants_int else "a number"
                raise ValueError(f"mock.{f.name} must be {kind}, got {value!r}")
            if not wants_int and not math.isfinite(value):
                raise ValueError(f"mock.{f.name} must be finite, got {value!r}")

        def require(condition: bool, name: str, why: str) -> None:
            if not condition:
                raise ValueError(f"mock.{name} = {getattr(self, name)!r}: {why}")

        require(self.n_galaxies >= 1, "n_galaxies", "need at least one galaxy")
        require(self.image_size >= 16, "image_size", "need at least 16 pixels per side")
        for name in (
            "pixel_scale",
            "psf_fwhm",
            "psf_moffat_beta",
            "sky_noise",
            "redshift_min",
            "reference_redshift",
            "reference_half_light_radius",
            "reference_flux",
            "disk_thickness",
            "feature_resolution",
            "feature_surface_brightness",
            "volunteers_high_mean",
            "stretch_softening",
            "stretch_maximum",
        ):
            require(getattr(self, name) > 0, name, "must be positive")
        require(self.psf_moffat_beta > 1.1, "psf_moffat_beta", "a Moffat PSF needs beta > 1.1")
        require(self.redshift_max > self.redshift_min, "redshift_max", "must exceed redshift_min")
        require(self.disk_thickness < 1, "disk_thickness", "an axis ratio must be below 1")
        for name in ("size_scatter", "luminosity_scatter", "volunteers_high_std"):
            require(getattr(self, name) >= 0, name, "must not be negative")
        for name in (
            "smooth_fraction",
            "artifact_fraction",
            "bar_fraction",
            "spiral_fraction",
            "minor_disturbance_fraction",
            "major_disturbance_fraction",
            "merger_fraction",
            "volunteers_high_fraction",
        ):
            require(0 <= getattr(self, name) <= 1, name, "a fraction must lie in [0, 1]")
        require(
            self.smooth_fraction + self.artifact_fraction <= 1,
            "artifact_fraction",
            "smooth_fraction + artifact_fraction must not exceed 1",
        )
        require(
            self.minor_disturbance_fraction + self.major_disturbance_fraction + self.merger_fraction
            <= 1,
            "merger_fraction",
            "the three disturbance fractions must not add up to more than 1",
        )
        require(0 < self.volunteer_error < 1, "volunteer_error", "must lie strictly in (0, 1)")
        require(self.volunteers_low_min >= 1, "volunteers_low_min", "need at least 1 volunteer")
        require(
            self.volunteers_low_max >= self.volunteers_low_min,
            "volunteers_low_max",
            "must be at least volunteers_low_min",
        )

    @property
    def volunteers_high_range(self) -> tuple[int, int]:
        """Inclusive range of the well-observed component: mean +- 3 sigma, above the low one."""
        low = max(
            self.volunteers_low_max + 1,
            math.floor(self.volunteers_high_mean - 3 * self.volunteers_high_std),
        )
        high = max(low, math.ceil(self.volunteers_high_mean + 3 * self.volunteers_high_std))
        return low, high


# =============================================================================================
# Latent parameters
# =============================================================================================


def _galaxy_seed_sequence(seed: int, index: int, stream: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=(stream, index))


def _galaxy_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(_galaxy_seed_sequence(seed, index, stream))


def _normal(u: np.ndarray) -> np.ndarray:
    """Standard normal deviates from uniforms, clipped to +-3 sigma (no absurd outliers)."""
    return np.clip(special.ndtri(np.clip(u, 1e-12, 1 - 1e-12)), -3.0, 3.0)


def sample_latents(config: MockSurveyConfig, seed: int) -> pd.DataFrame:
    """Latent parameters of every galaxy, one row each, from per-galaxy uniform draws.

    Angles are in degrees, sizes in arcsec, fluxes in sky-noise units (sum over the galaxy).
    """
    n = config.n_galaxies
    u = np.empty((n, _N_LATENT_UNIFORMS))
    for i in range(n):
        u[i] = _galaxy_rng(seed, i, _STREAM_LATENTS).random(_N_LATENT_UNIFORMS)

    morph = np.where(
        u[:, 0] < config.smooth_fraction,
        0,
        np.where(u[:, 0] < config.smooth_fraction + config.artifact_fraction, 2, 1),
    )
    featured, artifact = morph == 1, morph == 2

    z_ref = config.reference_redshift
    redshift = config.redshift_min * (config.redshift_max / config.redshift_min) ** u[:, 1]
    size_scale = np.exp(config.size_scatter * _normal(u[:, 2]))
    luminosity_scale = np.exp(config.luminosity_scatter * _normal(u[:, 3]))
    # Keep the galaxy inside the stamp (and its periodic FFT image away from the stamp).
    max_radius = 0.3 * config.image_size * config.pixel_scale
    half_light_radius = np.minimum(
        config.reference_half_light_radius * size_scale * z_ref / redshift, max_radius
    )
    flux = (
        config.reference_flux
        * luminosity_scale
        * (z_ref / redshift) ** 2
        * ((1 + z_ref) / (1 + redshift)) ** 4
    )

    bulge_fraction = np.where(featured, 0.85 * special.betaincinv(1.5, 3.5, u[:, 4]), 1.0)
    bulge_radius = np.where(
        featured, half_light_radius * (0.12 + 0.25 * u[:, 5]), half_light_radius
    )
    cos_inclination = np.where(featured, u[:, 6], 1.0)
    inclination = np.degrees(np.arccos(cos_inclination))
    disk_axis_ratio = np.sqrt(
        cos_inclination**2 + config.disk_thickness**2 * (1 - cos_inclination**2)
    )
    elliptical_axis_ratio = 0.35 + 0.65 * u[:, 7] ** 0.7
    # A disk's bulge looks a little flattened edge-on; an elliptical is its own bulge.
    bulge_axis_ratio = np.where(featured, 0.7 + 0.3 * disk_axis_ratio, elliptical_axis_ratio)
    disk_axis_ratio = np.where(featured, disk_axis_ratio, elliptical_axis_ratio)

    has_bar = featured & (u[:, 9] < config.bar_fraction)
    has_arms = featured & (u[:, 13] < config.spiral_fraction)
    n_arms = 1 + np.searchsorted(np.cumsum(_ARM_COUNT_PROBABILITIES)[:-1], u[:, 14], side="right")
    pitch = 8.0 + 27.0 * u[:, 15]
    winding = np.where(
        pitch < _WINDING_EDGES_DEG[0], 1, np.where(pitch < _WINDING_EDGES_DEG[1], 2, 3)
    )

    minor = config.minor_disturbance_fraction
    major = minor + config.major_disturbance_fraction
    merge = major + config.merger_fraction
    merger_state = np.where(
        artifact, 0, np.select([u[:, 18] < minor, u[:, 18] < major, u[:, 18] < merge], [1, 2, 3], 0)
    )

    artifact_kind = np.where(artifact, np.select([u[:, 23] < 0.45, u[:, 23] < 0.75], [1, 2], 3), 0)
    # Artifacts: a star has no galaxy at all; behind a trail or bad data sits a faint elliptical.
    flux = np.where(artifact_kind == 1, 0.0, np.where(artifact, 0.4 * flux, flux))
    artifact_strength = np.select(
        [artifact_kind == 1, artifact_kind == 2, artifact_kind == 3],
        [2e4 * 15.0 ** u[:, 24], 60.0 + 140.0 * u[:, 24], 3.0 + 3.0 * u[:, 24]],
        0.0,
    )

    high = u[:, 27] < config.volunteers_high_fraction
    high_low, high_high = config.volunteers_high_range
    n_high = np.clip(
        np.rint(config.volunteers_high_mean + config.volunteers_high_std * _normal(u[:, 28])),
        high_low,
        high_high,
    )
    n_span = config.volunteers_low_max - config.volunteers_low_min + 1
    n_low = config.volunteers_low_min + np.minimum(np.floor(u[:, 28] * n_span), n_span - 1)

    return pd.DataFrame(
        {
            "morphology": np.array(MORPHOLOGIES)[morph],
            "redshift": redshift,
            "size_scale": size_scale,
            "luminosity_scale": luminosity_scale,
            "half_light_radius_arcsec": half_light_radius,
            "flux": flux,
            "bulge_fraction": bulge_fraction,
            "bulge_half_light_radius_arcsec": bulge_radius,
            "bulge_axis_ratio": bulge_axis_ratio,
            "inclination_deg": inclination,
            "disk_axis_ratio": disk_axis_ratio,
            "position_angle_deg": 180.0 * u[:, 8],
            "has_bar": has_bar,
            "bar_strength": np.where(has_bar, 0.25 + 0.75 * u[:, 10], 0.0),
            "bar_length_arcsec": np.where(has_bar, half_light_radius * (0.6 + 0.5 * u[:, 11]), 0.0),
            "bar_angle_deg": np.where(has_bar, 180.0 * u[:, 12], 0.0),
            "has_arms": has_arms,
            "n_arms": np.where(has_arms, n_arms, 0).astype(np.int64),
            "arm_pitch_deg": np.where(has_arms, pitch, 0.0),
            "winding": np.array(WINDINGS)[np.where(has_arms, winding, 0)],
            "arm_strength": np.where(has_arms, 0.45 + 0.5 * u[:, 16], 0.0),
            "arm_phase_deg": np.where(has_arms, 360.0 * u[:, 17], 0.0),
            "merger_state": np.array(MERGER_STATES)[merger_state],
            "disturbance_angle_deg": 360.0 * u[:, 19],
            "companion_flux_ratio": np.where(merger_state == 3, 0.3 + 0.7 * u[:, 20], 0.0),
            "companion_separation_arcsec": np.where(
                merger_state == 3, half_light_radius * (1.2 + 1.3 * u[:, 21]), 0.0
            ),
            "companion_is_disk": (merger_state == 3) & (u[:, 22] < 0.5),
            "artifact_kind": np.array(ARTIFACT_KINDS)[artifact_kind],
            "artifact_strength": artifact_strength,
            "artifact_angle_deg": np.where(artifact, 180.0 * u[:, 25], 0.0),
            "artifact_offset": np.where(artifact, u[:, 26] - 0.5, 0.0),
            "n_volunteers": np.where(high, n_high, n_low).astype(np.int64),
        }
    )


# =============================================================================================
# What volunteers see: visibility and the true answer probabilities
# =============================================================================================


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return special.expit(x)


def _observed_axis_ratio(
    radius: np.ndarray, axis_ratio: np.ndarray, psf_sigma: float
) -> np.ndarray:
    """Axis ratio after PSF blurring, from Gaussian-equivalent second moments.

    ``sqrt(((q s)^2 + p^2) / (s^2 + p^2))`` with ``s = radius / 1.18`` and ``p`` the PSF sigma.
    """
    sigma = radius / 1.1774
    return np.sqrt(((axis_ratio * sigma) ** 2 + psf_sigma**2) / (sigma**2 + psf_sigma**2))


def visibility_terms(latents: pd.DataFrame, config: MockSurveyConfig) -> pd.DataFrame:
    """Image-derived quantities that drive the volunteers' answers (one row per galaxy).

    ``resolution = r_half / psf_fwhm``; ``surface_brightness = flux / 2 / (pi r_half_px^2)`` over
    the (artifact-scaled) sky noise; ``visibility = R^4/(R^4+R0^4) * S^2/(S^2+S0^2)``.
    """
    noise = config.sky_noise * np.where(
        latents["artifact_kind"] == "noise", latents["artifact_strength"], 1.0
    )
    radius = latents["half_light_radius_arcsec"].to_numpy()
    resolution = radius / config.psf_fwhm
    radius_px = radius / config.pixel_scale
    surface_brightness = latents["flux"].to_numpy() * 0.5 / (np.pi * radius_px**2) / noise
    vis_resolution = resolution**4 / (resolution**4 + config.feature_resolution**4)
    vis_brightness = surface_brightness**2 / (
        surface_brightness**2 + config.feature_surface_brightness**2
    )
    psf_sigma = config.psf_fwhm / 2.3548
    q_disk = _observed_axis_ratio(radius, latents["disk_axis_ratio"].to_numpy(), psf_sigma)
    q_bulge = _observed_axis_ratio(
        latents["bulge_half_light_radius_arcsec"].to_numpy(),
        latents["bulge_axis_ratio"].to_numpy(),
        psf_sigma,
    )
    bt = latents["bulge_fraction"].to_numpy()
    # Neighbouring arms cross a ray 2 pi R tan(pitch) / m apart; at R = 1.5 scale radii they
    # must be further apart than the PSF to be told apart.
    arm_spacing = (
        2
        * np.pi
        * 1.5
        * radius
        / 1.6783
        * np.tan(np.radians(latents["arm_pitch_deg"].to_numpy()))
        / np.maximum(latents["n_arms"].to_numpy(), 1)
    )
    return pd.DataFrame(
        {
            "resolution": resolution,
            "arm_separation": arm_spacing**2 / (arm_spacing**2 + config.psf_fwhm**2),
            "surface_brightness": surface_brightness,
            "resolution_visibility": vis_resolution,
            "brightness_visibility": vis_brightness,
            "visibility": vis_resolution * vis_brightness,
            "observed_disk_axis_ratio": q_disk,
            "observed_axis_ratio": bt * q_bulge + (1 - bt) * q_disk,
            # Arms and bars show on disks seen more face-on than ~70 degrees.
            "face_on": np.clip((latents["disk_axis_ratio"].to_numpy() - 0.3) / 0.4, 0.0, 1.0),
        },
        index=latents.index,
    )


class _Seen:
    """Latents plus visibility terms as plain arrays, for the answer models."""

    def __init__(self, latents: pd.DataFrame, config: MockSurveyConfig) -> None:
        terms = visibility_terms(latents, config)
        self.vis = terms["visibility"].to_numpy()
        self.vis_brightness = terms["brightness_visibility"].to_numpy()
        self.face_on = terms["face_on"].to_numpy()
        self.q_disk_obs = terms["observed_disk_axis_ratio"].to_numpy()
        self.q_obs = terms["observed_axis_ratio"].to_numpy()
        self.bt = latents["bulge_fraction"].to_numpy()
        self.arms = latents["arm_strength"].to_numpy() * latents["has_arms"].to_numpy()
        self.bar = latents["bar_strength"].to_numpy() * latents["has_bar"].to_numpy()
        self.n_arms = latents["n_arms"].to_numpy()
        self.pitch = latents["arm_pitch_deg"].to_numpy()
        self.merger = (
            latents["merger_state"].map({s: i for i, s in enumerate(MERGER_STATES)}).to_numpy()
        )
        self.artifact_kind = latents["artifact_kind"].to_numpy()
        self.is_artifact = self.artifact_kind != "none"
        # How well the arms / bar can be made out.
        self.arm_vis = (
            self.arms
            * self.vis
            * self.face_on
            * np.sqrt(1 - 0.5 * self.bt)
            * terms["arm_separation"].to_numpy()
        )
        self.bar_vis = self.bar * self.vis * self.face_on
        # Disturbances need surface brightness; a companion stays visible further away.
        self.merger_seen = self.merger * np.where(
            self.merger == 3, 0.6 + 0.4 * self.vis, 0.3 + 0.7 * self.vis
        )


def _nearest(value: np.ndarray, centres: dict[str, float], width: float) -> dict[str, np.ndarray]:
    """Soft assignment to named centres: ``p_k ∝ exp(-(value - c_k)^2 / (2 width^2))``."""
    names = list(centres)
    c = np.array([centres[k] for k in names])
    logits = -((value[:, None] - c[None, :]) ** 2) / (2 * width**2)
    p = special.softmax(logits, axis=1)
    return {k: p[:, j] for j, k in enumerate(names)}


def _p_featured_clean(s: _Seen) -> np.ndarray:
    """Disk evidence through a sigmoid: ``visibility * (sqrt(1 - B/T) + arms + bar)`` plus
    thinness (a thin streak is a disk even when small; the PSF already rounds tiny ones)."""
    thin = np.clip((0.45 - s.q_disk_obs) / 0.2, 0.0, 1.0) * (1 - s.bt)
    evidence = s.vis * (np.sqrt(1 - s.bt) + 0.3 * s.arms * s.face_on + 0.2 * s.bar)
    evidence += 0.6 * thin * s.vis_brightness
    return _sigmoid((evidence - 0.45) / 0.09)


def _smooth_or_featured(s: _Seen) -> dict[str, np.ndarray]:
    artifact_p = np.select(
        [
            s.artifact_kind == "star",
            s.artifact_kind == "satellite-trail",
            s.artifact_kind == "noise",
        ],
        [0.93, 0.85, 0.9],
        0.005,
    )
    featured = np.where(s.is_artifact, 0.25, _p_featured_clean(s)) * (1 - artifact_p)
    return {
        "smooth": 1 - artifact_p - featured,
        "featured-or-disk": featured,
        "artifact": artifact_p,
    }


def _disk_edge_on(s: _Seen) -> dict[str, np.ndarray]:
    yes = _sigmoid((0.33 - s.q_disk_obs) / 0.04)
    return {"yes": yes, "no": 1 - yes}


def _has_spiral_arms(s: _Seen) -> dict[str, np.ndarray]:
    yes = _sigmoid((s.arm_vis - 0.15) / 0.045)
    return {"yes": yes, "no": 1 - yes}


def _bar_parts(s: _Seen) -> tuple[np.ndarray, np.ndarray]:
    barred = _sigmoid((s.bar_vis - 0.18) / 0.05)
    strong_if_barred = _sigmoid((s.bar_vis - 0.5) / 0.08)
    return barred, strong_if_barred


def _bar_three(s: _Seen) -> dict[str, np.ndarray]:
    barred, strong = _bar_parts(s)
    return {"strong": barred * strong, "weak": barred * (1 - strong), "no": 1 - barred}


def _bar_two(s: _Seen) -> dict[str, np.ndarray]:
    barred, _ = _bar_parts(s)
    return {"yes": barred, "no": 1 - barred}


def _apparent_bulge(s: _Seen) -> np.ndarray:
    """Unresolved disks look bulge-dominated: ``B/T + (1 - B/T) * 0.6 * (1 - visibility)``."""
    return s.bt + (1 - s.bt) * 0.6 * (1 - s.vis)


def _bulge_size_five(s: _Seen) -> dict[str, np.ndarray]:
    centres = {"dominant": 0.8, "large": 0.55, "moderate": 0.35, "small": 0.17, "none": 0.03}
    return _nearest(_apparent_bulge(s), centres, 0.09)


def _bulge_size_four(s: _Seen) -> dict[str, np.ndarray]:
    centres = {"dominant": 0.75, "obvious": 0.45, "just-noticeable": 0.2, "no": 0.03}
    return _nearest(_apparent_bulge(s), centres, 0.09)


def _how_rounded(cigar: str) -> Callable[[_Seen], dict[str, np.ndarray]]:
    def model(s: _Seen) -> dict[str, np.ndarray]:
        return _nearest(s.q_obs, {"round": 0.9, "in-between": 0.62, cigar: 0.32}, 0.09)

    return model


def _edge_on_bulge_parts(s: _Seen) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(none, boxy, rounded): a boxy bulge is a bar seen edge-on."""
    boxy_vis = s.bar * s.vis * (1 - s.face_on)
    bulge_light = (s.bt + 0.5 * s.bar) * (0.4 + 0.6 * s.vis)
    none = _sigmoid((0.1 - bulge_light) / 0.03)
    boxy = (1 - none) * _sigmoid((boxy_vis - 0.3) / 0.07)
    return none, boxy, 1 - none - boxy


def _edge_on_bulge(s: _Seen) -> dict[str, np.ndarray]:
    none, boxy, rounded = _edge_on_bulge_parts(s)
    return {"boxy": boxy, "none": none, "rounded": rounded}


def _bulge_shape(s: _Seen) -> dict[str, np.ndarray]:
    none, boxy, rounded = _edge_on_bulge_parts(s)
    return {"round": rounded, "boxy": boxy, "no-bulge": none}


def _spiral_winding(s: _Seen) -> dict[str, np.ndarray]:
    """Pitch angle near 10/20/30 degrees, blended towards a prior as the arms fade."""
    by_pitch = _nearest(s.pitch, {"tight": 10.0, "medium": 20.0, "loose": 30.0}, 4.5)
    seen = np.clip(s.arm_vis / 0.5, 0.0, 1.0)
    prior = {"tight": 0.3, "medium": 0.45, "loose": 0.25}
    return {k: seen * by_pitch[k] + (1 - seen) * prior[k] for k in prior}


def _spiral_arm_count(s: _Seen) -> dict[str, np.ndarray]:
    """Counts blur into neighbours (more for many arms); faint arms get "cant-tell"."""
    cant_tell = _sigmoid((0.25 - s.arm_vis) / 0.07)
    counted = np.where(s.n_arms > 0, np.minimum(s.n_arms, 5), 2).astype(np.float64)
    width = 0.35 + 0.12 * counted
    k = np.arange(1, 6, dtype=np.float64)
    p = special.softmax(-((counted[:, None] - k[None, :]) ** 2) / (2 * width[:, None] ** 2), axis=1)
    names = ("1", "2", "3", "4", "more-than-4")
    out = {name: (1 - cant_tell) * p[:, j] for j, name in enumerate(names)}
    out["cant-tell"] = cant_tell
    return out


def _merging(s: _Seen) -> dict[str, np.ndarray]:
    centres = {name: float(i) for i, name in enumerate(MERGER_STATES)}
    return _nearest(s.merger_seen.astype(np.float64), centres, 0.45)


def _something_odd(s: _Seen) -> dict[str, np.ndarray]:
    disturbed = _sigmoid((s.merger_seen - 1.3) / 0.25)
    odd_artifact = np.select(
        [
            s.artifact_kind == "satellite-trail",
            s.artifact_kind == "noise",
            s.artifact_kind == "star",
        ],
        [0.6, 0.5, 0.3],
        0.03,
    )
    yes = 1 - (1 - disturbed) * (1 - odd_artifact)
    return {"yes": yes, "no": 1 - yes}


AnswerModel = Callable[[_Seen], dict[str, np.ndarray]]

# Question name -> {answer set -> model}; covers the decals_dr5 and gz2 trees.
ANSWER_MODELS: dict[str, dict[frozenset[str], AnswerModel]] = {
    "smooth-or-featured": {
        frozenset({"smooth", "featured-or-disk", "artifact"}): _smooth_or_featured
    },
    "disk-edge-on": {frozenset({"yes", "no"}): _disk_edge_on},
    "has-spiral-arms": {frozenset({"yes", "no"}): _has_spiral_arms},
    "bar": {frozenset({"strong", "weak", "no"}): _bar_three, frozenset({"yes", "no"}): _bar_two},
    "bulge-size": {
        frozenset({"dominant", "large", "moderate", "small", "none"}): _bulge_size_five,
        frozenset({"dominant", "obvious", "just-noticeable", "no"}): _bulge_size_four,
    },
    "how-rounded": {
        frozenset({"round", "in-between", "cigar-shaped"}): _how_rounded("cigar-shaped"),
        frozenset({"round", "in-between", "cigar"}): _how_rounded("cigar"),
    },
    "edge-on-bulge": {frozenset({"boxy", "none", "rounded"}): _edge_on_bulge},
    "bulge-shape": {frozenset({"round", "boxy", "no-bulge"}): _bulge_shape},
    "spiral-winding": {frozenset({"tight", "medium", "loose"}): _spiral_winding},
    "spiral-arm-count": {
        frozenset({"1", "2", "3", "4", "more-than-4", "cant-tell"}): _spiral_arm_count
    },
    "merging": {frozenset(MERGER_STATES): _merging},
    "something-odd": {frozenset({"yes", "no"}): _something_odd},
}


def check_schema(schema: Schema) -> None:
    """Raise ValueError unless the mock can answer every question of ``schema``."""
    for q in schema.questions:
        if q.name not in ANSWER_MODELS:
            raise ValueError(
                f"the mock survey cannot simulate question {q.name!r} of tree {schema.name!r}: "
                f"it knows only {sorted(ANSWER_MODELS)}"
            )
        if frozenset(q.answers) not in ANSWER_MODELS[q.name]:
            known = [sorted(a) for a in ANSWER_MODELS[q.name]]
            raise ValueError(
                f"the mock survey cannot simulate question {q.name!r} of tree {schema.name!r} "
                f"with answers {list(q.answers)}: it knows that question with answers {known}"
            )


def true_fractions(latents: pd.DataFrame, schema: Schema, config: MockSurveyConfig) -> np.ndarray:
    """(galaxies, answers) probability of each answer among the volunteers asked its question.

    Every question's clean model ``p`` is mixed with the error floor ``e = volunteer_error``:
    ``(1 - e) * p + e / n_answers``, so each value lies strictly in (0, 1) and each question sums
    to 1. Columns follow ``schema.label_cols``.
    """
    check_schema(schema)
    seen = _Seen(latents, config)
    out = np.empty((len(latents), schema.n_answers))
    e = config.volunteer_error
    for q in schema.questions:
        model = ANSWER_MODELS[q.name][frozenset(q.answers)]
        by_answer = model(seen)
        clean = np.clip(np.stack([by_answer[a] for a in q.answers], axis=1), 0.0, None)
        clean /= clean.sum(axis=1, keepdims=True)
        out[:, q.indices] = (1 - e) * clean + e / len(q.answers)
    return out


def simulate_votes(
    fractions: np.ndarray, n_volunteers: np.ndarray, schema: Schema, seed: int
) -> np.ndarray:
    """Volunteers walk the tree: (galaxies, answers) integer vote counts.

    A root question is ``Multinomial(n_volunteers, p_question)``; a child question is
    ``Multinomial(votes[parent answer], p_question)``, so its total equals the parent count.
    """
    votes = np.zeros(fractions.shape, dtype=np.int64)
    for i in range(fractions.shape[0]):
        rng = _galaxy_rng(seed, i, _STREAM_VOTES)
        for q, parent in zip(schema.questions, schema.parent_index, strict=True):
            n_asked = int(n_volunteers[i]) if parent is None else int(votes[i, parent])
            p = fractions[i, q.indices]
            votes[i, q.indices] = rng.multinomial(n_asked, p / p.sum())
    return votes


# =============================================================================================
# Rendering
# =============================================================================================


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
    rng = _galaxy_rng(seed, index, _STREAM_RENDER)
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


def _render_chunk(
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


# =============================================================================================
# The survey
# =============================================================================================


def galaxy_ids(n: int) -> list[str]:
    return [f"mock_{i:06d}" for i in range(n)]


def simulate_survey(
    out_dir: str | Path,
    schema: Schema,
    config: MockSurveyConfig,
    seed: int,
    threads: int = 1,
) -> None:
    """Render a mock survey into ``out_dir``: ``images/``, ``catalogue.csv``, ``truth.parquet``.

    ``catalogue.csv``: ``id_str``, ``file_loc`` (relative to ``images/``), the integer
    ``schema.label_cols`` and ``schema.total_cols``. ``truth.parquet``: ``id_str``,
    ``{label_col}_true_fraction`` (probability of the answer among volunteers asked),
    ``{question}{suffix}_true_p_asked`` and the latent and visibility parameters.
    ``threads`` worker processes render images; the outputs do not depend on it.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(threads, bool) or not isinstance(threads, int | np.integer) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    seed, threads = int(seed), int(threads)
    check_schema(schema)
    out_dir = Path(out_dir)
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)

    latents = sample_latents(config, seed)
    fractions = true_fractions(latents, schema, config)
    votes = simulate_votes(fractions, latents["n_volunteers"].to_numpy(), schema, seed)
    ids = galaxy_ids(config.n_galaxies)
    files = [f"{i}.png" for i in ids]

    _render_all(images_dir, config, seed, files, latents, threads)

    catalogue = pd.DataFrame({"id_str": ids, "file_loc": files})
    catalogue = pd.concat(
        [
            catalogue,
            pd.DataFrame(votes, columns=schema.label_cols),
            pd.DataFrame(schema.question_totals(votes).astype(np.int64), columns=schema.total_cols),
        ],
        axis=1,
    )
    catalogue.to_csv(out_dir / "catalogue.csv", index=False, lineterminator="\n")

    p_asked = schema.p_asked(fractions)
    truth = pd.concat(
        [
            pd.DataFrame({"id_str": ids}),
            pd.DataFrame(fractions, columns=[f"{c}_true_fraction" for c in schema.label_cols]),
            pd.DataFrame(
                p_asked,
                columns=[
                    f"{q.name}{schema.question_suffix}_true_p_asked" for q in schema.questions
                ],
            ),
            latents,
            visibility_terms(latents, config),
        ],
        axis=1,
    )
    table = pa.Table.from_pandas(truth, preserve_index=False)
    pq.write_table(table, out_dir / "truth.parquet")


def _render_all(
    images_dir: Path,
    config: MockSurveyConfig,
    seed: int,
    files: Sequence[str],
    latents: pd.DataFrame,
    threads: int,
) -> None:
    records = latents.to_dict("records")
    jobs = [(i, files[i], records[i]) for i in range(len(files))]
    config_fields = asdict(config)
    progress = Progress("simulate: rendering", len(jobs))
    # At least 20 chunks, so progress is logged at every tenth; the images do not depend on it.
    n_chunks = min(len(jobs), max(threads * 4, 20))
    bounds = np.linspace(0, len(jobs), n_chunks + 1).astype(int)
    chunks = [jobs[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
    if threads == 1 or len(jobs) < 2:
        for chunk in chunks:
            _render_chunk(str(images_dir), config_fields, seed, chunk)
            progress.advance(len(chunk))
        return
    # "fork" where there is one: "spawn" re-runs the caller's main module in every worker, which
    # breaks scripts without a __main__ guard (Snakemake's script: directive). Workers only run
    # numpy/GalSim code with OpenMP pinned to one thread, so forking is safe here.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ProcessPoolExecutor(max_workers=threads, mp_context=context) as pool:
        futures = [
            pool.submit(_render_chunk, str(images_dir), config_fields, seed, chunk)
            for chunk in chunks
        ]
        for chunk, future in zip(chunks, futures, strict=True):
            future.result()
            progress.advance(len(chunk))
