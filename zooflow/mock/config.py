"""The mock survey's settings: every tunable, its default and its allowed range."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields


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
