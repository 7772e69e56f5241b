"""What volunteers can see of a mock galaxy: resolution and surface brightness against PSF and sky.

Far-away galaxies shrink and fade, so their bars, arms and disturbances become hard to make out;
the answer models read these terms instead of the latent truth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from zooflow.mock.config import MockSurveyConfig
from zooflow.mock.latents import MERGER_STATES


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


class Seen:
    """What volunteers see of each galaxy: latents and visibility terms as plain arrays, for the
    answer models."""

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
