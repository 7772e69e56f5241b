"""FITS cutouts: one band or three, compressed or not, through the documented display stretch."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from zooflow.catalogue import ingest_catalogue
from zooflow.images import decode_image, image_problem
from zooflow.preprocess import preprocess_catalogue
from zooflow.schema import load_schema

SKY, NOISE = 100.0, 2.0


def galaxy_band(seed: int, size: int = 48, peak: float = 400.0, centre=(24, 24)) -> np.ndarray:
    """Sky plus Gaussian noise plus an exponential-profile galaxy, in counts."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    r = np.hypot(y - centre[0], x - centre[1])
    return SKY + rng.normal(0, NOISE, (size, size)) + peak * np.exp(-r / 3.0)


def test_one_band_follows_the_documented_arcsinh_stretch(tmp_path: Path):
    band = galaxy_band(1)
    fits.PrimaryHDU(band.astype(np.float32)).writeto(tmp_path / "g.fits")
    rgb = decode_image(tmp_path / "g.fits", fits_stretch="arcsinh", fits_softening=3.0)
    assert rgb.shape == (48, 48, 3) and rgb.dtype == np.uint8
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()

    # The module docstring's recipe, from the file's own numbers.
    data = band.astype(np.float32).astype(np.float64)
    sky = np.median(data)
    sigma = 1.4826 * np.median(np.abs(data - sky))
    y = np.arcsinh((data - sky) / sigma / 3.0)
    expected = np.rint(np.clip(y / np.percentile(y, 99.5), 0, 1) * 255)
    np.testing.assert_array_equal(rgb[..., 0], expected)
    assert np.median(rgb[:8, :8, 0]) < 40  # the sky is dark
    assert rgb[24, 24, 0] == 255  # the core is white

    # arcsinh lifts faint light: at 5 sigma it is brighter than a linear stretch shows it.
    linear = decode_image(tmp_path / "g.fits", fits_stretch="linear")
    faint = np.abs((data - sky) / sigma - 5) < 1
    assert rgb[faint, 0].mean() > 2 * linear[faint, 0].mean()


def test_three_bands_are_blue_green_red_in_file_order_and_compression_changes_nothing(
    tmp_path: Path,
):
    # g bright on the left galaxy, z bright on the right one.
    g = galaxy_band(2, centre=(24, 12)) + galaxy_band(3, peak=0) - SKY
    z = galaxy_band(4, centre=(24, 36)) + galaxy_band(5, peak=0) - SKY
    r = galaxy_band(6, peak=0)
    cube = np.stack([g, r, z]).astype(np.int32)  # integers: tile compression is lossless
    fits.PrimaryHDU(cube).writeto(tmp_path / "grz.fits")
    fits.PrimaryHDU(cube).writeto(tmp_path / "grz.fits.gz")
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(cube)]).writeto(tmp_path / "grz.fits.fz")
    rgb = decode_image(tmp_path / "grz.fits")
    red, blue = rgb[..., 0].astype(int), rgb[..., 2].astype(int)
    assert red[24, 36] > 200 and blue[24, 36] < 100  # z galaxy shows red
    assert blue[24, 12] > 200 and red[24, 12] < 100  # g galaxy shows blue
    for other in ("grz.fits.gz", "grz.fits.fz"):
        np.testing.assert_array_equal(decode_image(tmp_path / other), rgb)


def test_broken_fits_are_rejected_by_ingest_with_a_reason_and_good_ones_are_prepared(
    tmp_path: Path,
):
    schema = load_schema("decals_dr5")
    images = tmp_path / "images"
    images.mkdir()
    fits.PrimaryHDU(galaxy_band(7).astype(np.float32)).writeto(images / "good.fits")
    fits.PrimaryHDU(np.stack([galaxy_band(i) for i in range(3)])).writeto(images / "good3.fits.gz")
    data = (images / "good.fits").read_bytes()
    (images / "truncated.fits").write_bytes(data[: len(data) // 3])
    (images / "text.fits").write_text("SIMPLE  = nonsense\n")
    fits.PrimaryHDU(np.stack([galaxy_band(i) for i in range(4)])).writeto(images / "four.fits")
    fits.PrimaryHDU(np.full((8, 8), np.nan)).writeto(images / "blank.fits")
    files = ["good.fits", "good3.fits.gz", "truncated.fits", "text.fits", "four.fits", "blank.fits"]
    catalogue = pd.DataFrame({"id_str": [f.split(".")[0] for f in files], "file_loc": files})
    catalogue.to_csv(tmp_path / "catalogue.csv", index=False)

    result = ingest_catalogue(tmp_path / "catalogue.csv", images, schema, votes_optional=True)
    assert result.clean["id_str"].tolist() == ["good", "good3"]
    reasons = dict(zip(result.rejected["id_str"], result.rejected["reason"], strict=True))
    assert set(reasons) == {"truncated", "text", "four", "blank"}
    for name in ("truncated", "text", "four", "blank"):
        assert "image does not decode" in reasons[name] and f"{name}.fits" in reasons[name]
    assert "may have been truncated" in reasons["truncated"]
    assert "a cube of 4 bands" in reasons["four"]
    assert "every pixel is NaN" in reasons["blank"]
    assert image_problem(images / "absent.fits") == "image file missing"

    result.clean.to_parquet(tmp_path / "clean.parquet")
    preprocess_catalogue(
        tmp_path / "clean.parquet",
        tmp_path / "images.h5",
        image_size=16,
        crop_fraction=1.0,
        greyscale=False,
        fits_stretch="linear",
    )
    with h5py.File(tmp_path / "images.h5") as f:
        assert f["images"].shape == (2, 16, 16, 3)
        assert f["images"][0].max() > 200  # the galaxy is there
    with pytest.raises(ValueError, match="unknown FITS stretch 'log'"):
        preprocess_catalogue(
            tmp_path / "clean.parquet",
            tmp_path / "other.h5",
            image_size=16,
            crop_fraction=1.0,
            greyscale=False,
            fits_stretch="log",
        )
