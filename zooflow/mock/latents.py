"""Each mock galaxy's latent parameters, drawn from its own fixed set of uniforms.

Morphology, redshift-like distance, size and flux, bulge, disk inclination, bar, spiral arms,
disturbance, artifacts and the number of volunteers: one row per galaxy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from zooflow.mock.config import MockSurveyConfig
from zooflow.mock.streams import STREAM_LATENTS, galaxy_rng

_N_LATENT_UNIFORMS = 32  # fixed per galaxy, so adding latents later keeps old galaxies stable

MORPHOLOGIES = ("smooth", "featured", "artifact")
ARTIFACT_KINDS = ("none", "star", "satellite-trail", "noise")
MERGER_STATES = ("none", "minor-disturbance", "major-disturbance", "merger")
WINDINGS = ("none", "tight", "medium", "loose")

# Pitch angle (degrees) limits between tight/medium and medium/loose arms.
_WINDING_EDGES_DEG = (15.0, 25.0)
# Probability of 1, 2, 3, 4, 5, 6 arms for a spiral.
_ARM_COUNT_PROBABILITIES = np.array([0.07, 0.50, 0.20, 0.11, 0.07, 0.05])


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
        u[i] = galaxy_rng(seed, i, STREAM_LATENTS).random(_N_LATENT_UNIFORMS)

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
