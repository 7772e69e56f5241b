"""Centre crop, resize, greyscale and the HDF5 writer of zooflow.preprocess."""

from __future__ import annotations

import operator
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from zooflow.preprocess import (
    parallel_map,
    prepare_file,
    prepare_image,
    preprocess_catalogue,
    worker_kind,
)


def random_rgb(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(*shape, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("shape", "image_size", "greyscale", "channels"),
    [((100, 80), 16, False, 3), ((100, 80), 16, True, 1), ((20, 20), 48, True, 1)],
)
def test_output_shape_and_type(shape, image_size, greyscale, channels):
    out = prepare_image(random_rgb(shape), image_size, 0.5, greyscale)
    assert out.shape == (image_size, image_size, channels)
    assert out.dtype == np.uint8


def test_centre_crop_keeps_exactly_the_central_square():
    # A 60x90 frame with a bright 30x30 square in the middle: crop 0.5 of the short side (30 px)
    # must keep only the square, so a uniform square stays uniform after resizing.
    image = np.zeros((60, 90, 3), dtype=np.uint8)
    image[15:45, 30:60] = (200, 100, 50)
    cropped = prepare_image(image, 10, 0.5, greyscale=False)
    assert np.all(cropped == np.array([200, 100, 50], dtype=np.uint8))
    # The whole short side includes dark margins, which darken the border pixels.
    full = prepare_image(image, 10, 1.0, greyscale=False)
    assert full[..., 0].min() < 100
    assert full[5, 5, 0] >= 190


def test_crop_is_centred_on_odd_margins():
    # 7 rows x 4 columns, crop side 3: rows 2..4, columns 0..2 ((7-3)//2 = 2, (4-3)//2 = 0).
    image = np.arange(7 * 4, dtype=np.uint8).reshape(7, 4, 1).repeat(3, axis=2)
    out = prepare_image(image, 3, 0.75, greyscale=False)  # round(0.75 * 4) = 3, no resize
    np.testing.assert_array_equal(out[..., 0], image[2:5, 0:3, 0])


def test_downsampling_is_anti_aliased():
    # One-pixel checkerboard: point sampling would return pure 0 or 255, a proper low-pass
    # filter returns the average grey.
    board = ((np.indices((96, 96)).sum(axis=0) % 2) * 255).astype(np.uint8)
    out = prepare_image(np.repeat(board[..., None], 3, axis=2), 24, 1.0, greyscale=True)
    interior = out[2:-2, 2:-2].astype(float)
    assert abs(interior.mean() - 127.5) < 3
    assert interior.std() < 3


def test_downsampled_ramp_matches_block_means_in_the_interior():
    ramp = np.tile((np.arange(96) * 2).astype(np.uint8), (96, 1))
    out = prepare_image(np.repeat(ramp[..., None], 3, axis=2), 32, 1.0, greyscale=True)
    block_means = ramp.reshape(96, 32, 3).mean(axis=2)[0]
    np.testing.assert_allclose(out[16, 3:-3, 0], block_means[3:-3], atol=1.0)


def test_greyscale_is_the_rounded_channel_mean_of_the_colour_output():
    image = random_rgb((70, 50), seed=3)
    colour = prepare_image(image, 20, 0.9, greyscale=False)
    grey = prepare_image(image, 20, 0.9, greyscale=True)
    assert colour.shape == (20, 20, 3) and grey.shape == (20, 20, 1)
    # Means of whole numbers are k, k+1/3 or k+2/3: rounding them is unambiguous.
    np.testing.assert_array_equal(grey[..., 0], np.rint(colour.mean(axis=2)).astype(np.uint8))


def test_colour_keeps_distinct_channels():
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 250, 120, 10
    out = prepare_image(image, 8, 1.0, greyscale=False)
    np.testing.assert_array_equal(out[0, 0], [250, 120, 10])


@pytest.mark.parametrize(
    "bad",
    [
        {"image_size": 0},
        {"image_size": 2.5},
        {"crop_fraction": 0.0},
        {"crop_fraction": 1.5},
        {"crop_fraction": float("nan")},
    ],
)
def test_bad_settings_are_rejected(bad):
    settings = {"image_size": 8, "crop_fraction": 0.5, "greyscale": False} | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        prepare_image(random_rgb((16, 16)), **settings)


def test_non_rgb_arrays_are_rejected():
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        prepare_image(np.zeros((16, 16, 4), dtype=np.uint8), 8, 1.0, False)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        prepare_image(np.zeros((16, 16, 3), dtype=np.uint16), 8, 1.0, False)


# --- odd files ------------------------------------------------------------------------------


def save_16bit_grey(path: Path, value: int, shape=(40, 40)) -> Path:
    Image.fromarray(np.full(shape, value, dtype=np.uint16)).save(path)
    return path


def save_rgba(path: Path, rgba=(10, 200, 30, 0), shape=(50, 30)) -> Path:
    Image.fromarray(np.full((*shape, 4), rgba, dtype=np.uint8), mode="RGBA").save(path)
    return path


def save_palette(path: Path) -> Path:
    image = Image.new("P", (30, 30))
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * (254 * 3))
    image.paste(1, (0, 0, 30, 30))  # every pixel is palette entry 1: pure red
    image.save(path)
    return path


def test_16bit_file_is_scaled_to_8bit(tmp_path):
    # 25700 = 100 * 257: exactly 8-bit 100 on the 16-bit scale.
    out = prepare_file(save_16bit_grey(tmp_path / "deep.png", 25700), 16, 1.0, greyscale=False)
    assert out.shape == (16, 16, 3)
    assert np.all(out == 100)
    bright = prepare_file(save_16bit_grey(tmp_path / "full.png", 65535), 16, 1.0, greyscale=True)
    assert np.all(bright == 255)


def test_rgba_file_drops_alpha_and_keeps_colour(tmp_path):
    out = prepare_file(save_rgba(tmp_path / "alpha.png"), 12, 0.8, greyscale=False)
    assert out.shape == (12, 12, 3)
    assert np.all(out == np.array([10, 200, 30], dtype=np.uint8))


def test_palette_file_is_expanded(tmp_path):
    out = prepare_file(save_palette(tmp_path / "palette.png"), 8, 1.0, greyscale=True)
    assert out.shape == (8, 8, 1)
    assert np.all(out == 85)  # (255 + 0 + 0) / 3


# --- whole catalogue ------------------------------------------------------------------------


@pytest.fixture
def mixed_catalogue(tmp_path) -> Path:
    """Nine galaxies: RGB files of several sizes plus 16-bit, RGBA and palette oddities."""
    folder = tmp_path / "images"
    folder.mkdir()
    paths = []
    for i, shape in enumerate([(64, 64), (80, 50), (30, 30), (64, 64), (101, 99), (64, 64)]):
        path = folder / f"rgb_{i}.png"
        Image.fromarray(random_rgb(shape, seed=i)).save(path)
        paths.append(path)
    paths += [
        save_16bit_grey(folder / "deep.png", 40000),
        save_rgba(folder / "alpha.png"),
        save_palette(folder / "palette.png"),
    ]
    table = pd.DataFrame(
        {
            "id_str": [f"gal-{i:02d}" for i in range(len(paths))],
            "file_loc": [str(p) for p in paths],
            "labelled": True,
        }
    )
    catalogue = tmp_path / "catalogue.parquet"
    table.to_parquet(catalogue, index=False)
    return catalogue


@pytest.mark.parametrize("greyscale", [True, False])
def test_preprocess_catalogue_writes_every_image_in_row_order(tmp_path, mixed_catalogue, greyscale):
    out = tmp_path / "out" / "images.h5"
    preprocess_catalogue(
        mixed_catalogue, out, image_size=12, crop_fraction=0.8, greyscale=greyscale, threads=1
    )
    table = pd.read_parquet(mixed_catalogue)
    channels = 1 if greyscale else 3
    with h5py.File(out, "r") as h5:
        images = h5["images"][...]
        assert images.dtype == np.uint8
        assert images.shape == (len(table), 12, 12, channels)
        assert h5["id_str"].asstr()[...].tolist() == table["id_str"].tolist()
        assert h5.attrs["image_size"] == 12
        assert h5.attrs["crop_fraction"] == pytest.approx(0.8)
        assert bool(h5.attrs["greyscale"]) is greyscale
    for row, path in enumerate(table["file_loc"]):
        np.testing.assert_array_equal(images[row], prepare_file(path, 12, 0.8, greyscale))
    # no temporary file left next to the result
    assert sorted(p.name for p in out.parent.iterdir()) == ["images.h5"]


def read_h5(path: Path) -> tuple[np.ndarray, list[str]]:
    with h5py.File(path, "r") as h5:
        return h5["images"][...], h5["id_str"].asstr()[...].tolist()


def test_worker_kind_avoids_fork_once_tensorflow_is_loaded(monkeypatch):
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    assert worker_kind() == ("process" if sys.platform.startswith("linux") else "thread")
    monkeypatch.setitem(sys.modules, "tensorflow", object())
    assert worker_kind() == "thread"


def test_the_pool_is_given_a_window_of_items_at_a_time(monkeypatch):
    """pool.map takes every item it is given at once; a survey of millions must not be."""
    monkeypatch.setattr("zooflow.preprocess.worker_kind", lambda: "thread")
    monkeypatch.setattr("zooflow.preprocess._ITEMS_IN_FLIGHT", 4)
    taken = []

    def items():
        for item in range(10):
            taken.append(item)
            yield item

    results = parallel_map(operator.neg, items(), threads=2)
    first = next(results)
    assert len(taken) == 4
    assert [first, *results] == [-item for item in range(10)]


def test_two_thread_workers_write_the_same_file_as_one(tmp_path, mixed_catalogue, monkeypatch):
    settings = {"image_size": 10, "crop_fraction": 1.0, "greyscale": False}
    preprocess_catalogue(mixed_catalogue, tmp_path / "one.h5", **settings, threads=1)
    monkeypatch.setattr("zooflow.preprocess.worker_kind", lambda: "thread")
    monkeypatch.setattr("zooflow.preprocess._ITEMS_IN_FLIGHT", 2)  # windows of 2 of 9 images
    preprocess_catalogue(mixed_catalogue, tmp_path / "two.h5", **settings, threads=2)
    one, two = read_h5(tmp_path / "one.h5"), read_h5(tmp_path / "two.h5")
    np.testing.assert_array_equal(one[0], two[0])
    assert one[1] == two[1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked workers: Linux only")
def test_two_process_workers_write_the_same_file_as_one(tmp_path, mixed_catalogue):
    # A fresh interpreter: the test process may have imported TensorFlow, which rules out fork.
    settings = {"image_size": 10, "crop_fraction": 1.0, "greyscale": False}
    preprocess_catalogue(mixed_catalogue, tmp_path / "one.h5", **settings, threads=1)
    program = (
        "import sys\n"
        "import zooflow.preprocess\n"
        "from zooflow.preprocess import preprocess_catalogue, worker_kind\n"
        "assert worker_kind() == 'process'\n"
        "zooflow.preprocess._ITEMS_IN_FLIGHT = 4\n"
        "preprocess_catalogue(sys.argv[1], sys.argv[2], image_size=10, crop_fraction=1.0,\n"
        "                     greyscale=False, threads=2)\n"
    )
    subprocess.run(
        [sys.executable, "-c", program, str(mixed_catalogue), str(tmp_path / "two.h5")],
        check=True,
        timeout=120,
    )
    one, two = read_h5(tmp_path / "one.h5"), read_h5(tmp_path / "two.h5")
    np.testing.assert_array_equal(one[0], two[0])
    assert one[1] == two[1]


@pytest.mark.parametrize("threads", [1, 2])
def test_unreadable_image_names_the_row_and_leaves_no_output(tmp_path, mixed_catalogue, threads):
    table = pd.read_parquet(mixed_catalogue)
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    table.loc[4, "file_loc"] = str(tmp_path / "broken.png")
    table.loc[4, "id_str"] = "the-broken-one"
    bad_catalogue = tmp_path / "bad.parquet"
    table.to_parquet(bad_catalogue, index=False)
    out_dir = tmp_path / "out"
    with pytest.raises(ValueError, match=r"row 4 \(id_str 'the-broken-one'.*broken\.png"):
        preprocess_catalogue(
            bad_catalogue,
            out_dir / "images.h5",
            image_size=8,
            crop_fraction=1.0,
            greyscale=True,
            threads=threads,
        )
    assert list(out_dir.iterdir()) == []


def test_catalogue_without_file_column_is_rejected(tmp_path):
    catalogue = tmp_path / "catalogue.parquet"
    pd.DataFrame({"id_str": ["a"], "labelled": [True]}).to_parquet(catalogue)
    with pytest.raises(ValueError, match="file_loc"):
        preprocess_catalogue(
            catalogue, tmp_path / "x.h5", image_size=8, crop_fraction=1.0, greyscale=True
        )


def test_duplicate_ids_are_rejected(tmp_path, mixed_catalogue):
    table = pd.read_parquet(mixed_catalogue)
    table.loc[3, "id_str"] = table.loc[1, "id_str"]
    table.to_parquet(tmp_path / "dup.parquet")
    with pytest.raises(ValueError, match=r"unique; rows \[1, 3\]"):
        preprocess_catalogue(
            tmp_path / "dup.parquet",
            tmp_path / "x.h5",
            image_size=8,
            crop_fraction=1.0,
            greyscale=True,
        )
