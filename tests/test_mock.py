"""The embedded mock survey: determinism, tree-consistent votes, truth table, images, signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats

from zooflow.images import decode_image
from zooflow.mock import (
    MockSurveyConfig,
    render_galaxy,
    sample_latents,
    simulate_survey,
    simulate_votes,
    true_fractions,
)
from zooflow.schema import Schema, load_schema

SMALL = MockSurveyConfig(n_galaxies=40, image_size=32)
SEED = 11


def survey_files(out_dir: Path) -> dict[str, bytes]:
    """Every output file's bytes, keyed by its path relative to ``out_dir``."""
    return {
        str(p.relative_to(out_dir)): p.read_bytes()
        for p in sorted(out_dir.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def decals() -> Schema:
    return load_schema("decals_dr5")


@pytest.fixture(scope="module")
def survey(tmp_path_factory, decals) -> Path:
    out = tmp_path_factory.mktemp("mock_threads1")
    simulate_survey(out, decals, SMALL, seed=SEED, threads=1)
    return out


def assert_tree_consistent(schema: Schema, catalogue: pd.DataFrame, truth: pd.DataFrame) -> None:
    votes = catalogue[schema.label_cols].to_numpy()
    totals = catalogue[schema.total_cols].to_numpy()
    np.testing.assert_array_equal(totals, schema.question_totals(votes))
    for i, (question, parent) in enumerate(zip(schema.questions, schema.parent_index, strict=True)):
        expected = truth["n_volunteers"].to_numpy() if parent is None else votes[:, parent]
        np.testing.assert_array_equal(totals[:, i], expected, err_msg=question.name)


# --- determinism -------------------------------------------------------------------------


def test_same_seed_is_byte_identical_whatever_the_thread_count(tmp_path, survey, decals):
    simulate_survey(tmp_path, decals, SMALL, seed=SEED, threads=2)
    one, two = survey_files(survey), survey_files(tmp_path)
    assert sorted(one) == sorted(two)
    assert len([name for name in one if name.startswith("images/")]) == SMALL.n_galaxies
    for name in one:
        assert one[name] == two[name], name


def test_another_seed_gives_another_survey(tmp_path, survey, decals):
    simulate_survey(tmp_path, decals, SMALL, seed=SEED + 1, threads=1)
    one, other = survey_files(survey), survey_files(tmp_path)
    assert one["catalogue.csv"] != other["catalogue.csv"]
    different_images = sum(one[n] != other[n] for n in one if n.startswith("images/"))
    assert different_images == SMALL.n_galaxies


def test_first_galaxies_do_not_depend_on_survey_size():
    small = sample_latents(MockSurveyConfig(n_galaxies=10), seed=3)
    large = sample_latents(MockSurveyConfig(n_galaxies=25), seed=3)
    pd.testing.assert_frame_equal(small, large.iloc[:10])


# --- catalogue, truth, images --------------------------------------------------------------


def test_catalogue_has_exactly_the_schema_columns(survey, decals):
    catalogue = pd.read_csv(survey / "catalogue.csv")
    assert list(catalogue.columns) == ["id_str", "file_loc", *decals.label_cols, *decals.total_cols]
    assert catalogue["id_str"].tolist() == [f"mock_{i:06d}" for i in range(SMALL.n_galaxies)]
    assert (catalogue["file_loc"] == catalogue["id_str"] + ".png").all()
    for col in decals.label_cols + decals.total_cols:
        assert pd.api.types.is_integer_dtype(catalogue[col]), col
        assert (catalogue[col] >= 0).all(), col


def test_votes_walk_the_tree(survey, decals):
    catalogue = pd.read_csv(survey / "catalogue.csv")
    truth = pd.read_parquet(survey / "truth.parquet")
    assert_tree_consistent(decals, catalogue, truth)
    # Someone answers the questions below the root: the walk does go down the tree.
    assert catalogue["disk-edge-on_total-votes"].sum() > 0
    assert catalogue["spiral-arm-count_total-votes"].sum() > 0


def test_volunteer_counts_follow_the_two_component_mixture():
    config = MockSurveyConfig(n_galaxies=3000)
    n = sample_latents(config, seed=5)["n_volunteers"].to_numpy()
    low = (n >= config.volunteers_low_min) & (n <= config.volunteers_low_max)
    high_min, high_max = config.volunteers_high_range
    high = (n >= high_min) & (n <= high_max)
    assert (low | high).all()
    assert abs(high.mean() - config.volunteers_high_fraction) < 0.03
    assert set(np.unique(n[low])) == set(range(config.volunteers_low_min, 11))
    assert abs(n[high].mean() - config.volunteers_high_mean) < 0.5


def test_truth_fractions_are_probabilities_per_question(survey, decals):
    truth = pd.read_parquet(survey / "truth.parquet")
    fractions = truth[[f"{c}_true_fraction" for c in decals.label_cols]].to_numpy()
    assert ((fractions > 0) & (fractions < 1)).all()
    for q in decals.questions:
        np.testing.assert_allclose(fractions[:, q.indices].sum(axis=1), 1.0, atol=1e-12)
    p_asked = truth[[f"{q.name}_true_p_asked" for q in decals.questions]].to_numpy()
    for i, parent in enumerate(decals.parent_index):
        if parent is None:
            np.testing.assert_allclose(p_asked[:, i], 1.0)
        else:
            owner = decals.answer_question_index[parent]
            np.testing.assert_allclose(p_asked[:, i], p_asked[:, owner] * fractions[:, parent])
    latents = {"redshift", "bulge_fraction", "inclination_deg", "position_angle_deg", "has_bar"}
    latents |= {"bar_strength", "n_arms", "winding", "merger_state", "artifact_kind"}
    assert latents <= set(truth.columns)
    assert truth["id_str"].tolist() == [f"mock_{i:06d}" for i in range(SMALL.n_galaxies)]


def test_votes_are_drawn_from_the_true_fractions(decals):
    config = MockSurveyConfig(n_galaxies=400)
    fractions = true_fractions(sample_latents(config, seed=2), decals, config)
    n_volunteers = np.full(config.n_galaxies, 50)
    votes = simulate_votes(fractions, n_volunteers, decals, seed=2)
    root = decals.question("smooth-or-featured").indices
    observed = votes[:, root].sum(axis=0) / n_volunteers.sum()
    np.testing.assert_allclose(observed, fractions[:, root].mean(axis=0), atol=0.01)
    # Children: votes per asked volunteer match the fractions, weighted by who was asked.
    arms = decals.question("has-spiral-arms")
    asked = votes[:, arms.indices].sum(axis=1)
    assert asked.sum() > 1000
    expected = (fractions[:, arms.start] * asked).sum() / asked.sum()
    assert abs(votes[:, arms.start].sum() / asked.sum() - expected) < 0.02


def test_images_decode_to_the_configured_size(survey):
    catalogue = pd.read_csv(survey / "catalogue.csv")
    for file_name in catalogue["file_loc"]:
        path = survey / "images" / file_name
        with Image.open(path) as img:
            assert img.format == "PNG" and img.mode == "RGB"
        pixels = decode_image(path)
        assert pixels.shape == (SMALL.image_size, SMALL.image_size, 3)
        assert pixels.dtype == np.uint8
        assert pixels.max() > pixels.min()  # not blank


# --- the answers are learnable from the images ---------------------------------------------


def _radial_light(image: np.ndarray) -> tuple[float, float]:
    """(fraction of the light within 3 px of the centre out of 10 px, mean blue - red).

    Light is counted above the sky level, the median of the stamp's outer ring.
    """
    flux = image.astype(np.float64)
    size = image.shape[0]
    yy, xx = np.indices((size, size)) - size // 2
    radius = np.hypot(xx, yy)
    grey = flux.mean(axis=2)
    grey = np.clip(grey - np.median(grey[radius > 0.45 * size]), 0.0, None)
    inner, outer = grey[radius <= 3].sum(), grey[radius <= 10].sum()
    galaxy = radius <= 6
    colour = (flux[..., 2][galaxy] - flux[..., 0][galaxy]).mean()
    return inner / outer, colour


def test_featured_images_are_extended_and_bluer_than_smooth_ones(decals):
    config = MockSurveyConfig(n_galaxies=160, image_size=48)
    latents = sample_latents(config, seed=4)
    fractions = true_fractions(latents, decals, config)
    q = decals.question("smooth-or-featured")
    smooth = fractions[:, q.start] > 0.8
    featured = fractions[:, q.start + 1] > 0.8
    assert smooth.sum() >= 20 and featured.sum() >= 20
    measures = np.array(
        [
            _radial_light(render_galaxy(row, config, 4, i))
            for i, row in enumerate(latents.to_dict("records"))
        ]
    )
    concentration, colour = measures[:, 0], measures[:, 1]
    # Rank tests: every featured/smooth pair ordered the expected way counts.
    less_concentrated = stats.mannwhitneyu(
        concentration[featured], concentration[smooth], alternative="less"
    )
    bluer = stats.mannwhitneyu(colour[featured], colour[smooth], alternative="greater")
    assert less_concentrated.pvalue < 1e-6, less_concentrated
    assert bluer.pvalue < 1e-6, bluer
    assert colour[featured].mean() > colour[smooth].mean() + 10


def test_distance_fades_features(decals):
    config = MockSurveyConfig(n_galaxies=2000)
    latents = sample_latents(config, seed=6)
    fractions = pd.DataFrame(true_fractions(latents, decals, config), columns=decals.label_cols)
    disks = latents["morphology"] == "featured"
    near = disks & (latents["redshift"] < 0.03)
    far = disks & (latents["redshift"] > 0.08)
    assert near.sum() > 100 and far.sum() > 100
    featured = fractions["smooth-or-featured_featured-or-disk"]
    assert featured[near].mean() > 0.8
    assert featured[far].mean() < featured[near].mean() - 0.4
    # Faint spirals: fewer see arms, more cannot count them.
    spirals_near, spirals_far = near & latents["has_arms"], far & latents["has_arms"]
    arms = fractions["has-spiral-arms_yes"]
    assert arms[spirals_far].mean() < arms[spirals_near].mean() - 0.3
    cant_tell = fractions["spiral-arm-count_cant-tell"]
    assert cant_tell[spirals_far].mean() > cant_tell[spirals_near].mean() + 0.2


def test_answers_follow_the_latent_structure(decals):
    config = MockSurveyConfig(n_galaxies=2000)
    latents = sample_latents(config, seed=8)
    fractions = pd.DataFrame(true_fractions(latents, decals, config), columns=decals.label_cols)
    face_on_near = (
        (latents["morphology"] == "featured")
        & (latents["redshift"] < 0.035)
        & (latents["disk_axis_ratio"] > 0.6)
    )
    barred = face_on_near & latents["has_bar"]
    unbarred = face_on_near & ~latents["has_bar"]
    assert fractions["bar_no"][barred].mean() < 0.3 < 0.8 < fractions["bar_no"][unbarred].mean()
    for winding in ("tight", "medium", "loose"):
        group = face_on_near & (latents["winding"] == winding)
        answers = fractions.loc[
            group, [f"spiral-winding_{w}" for w in ("tight", "medium", "loose")]
        ]
        assert answers.mean().idxmax() == f"spiral-winding_{winding}"
    artifacts = latents["artifact_kind"] != "none"
    assert fractions["smooth-or-featured_artifact"][artifacts].min() > 0.8
    assert fractions["smooth-or-featured_artifact"][~artifacts].max() < 0.05
    mergers = latents["merger_state"] == "merger"
    assert fractions["merging_merger"][mergers].mean() > 0.5
    assert fractions["merging_none"][latents["merger_state"] == "none"].mean() > 0.8


# --- trees and configuration ---------------------------------------------------------------


def test_gz2_tree(tmp_path):
    gz2 = load_schema("gz2")
    config = MockSurveyConfig(n_galaxies=20, image_size=16)
    simulate_survey(tmp_path, gz2, config, seed=1)
    catalogue = pd.read_csv(tmp_path / "catalogue.csv")
    truth = pd.read_parquet(tmp_path / "truth.parquet")
    assert list(catalogue.columns) == ["id_str", "file_loc", *gz2.label_cols, *gz2.total_cols]
    assert_tree_consistent(gz2, catalogue, truth)
    fractions = truth[[f"{c}_true_fraction" for c in gz2.label_cols]].to_numpy()
    assert ((fractions > 0) & (fractions < 1)).all()
    assert decode_image(tmp_path / "images" / "mock_000000.png").shape == (16, 16, 3)


def test_question_suffix_names_the_columns(tmp_path):
    schema = load_schema("decals_dr5", question_suffix="-dr5")
    simulate_survey(tmp_path, schema, MockSurveyConfig(n_galaxies=3, image_size=16), seed=1)
    catalogue = pd.read_csv(tmp_path / "catalogue.csv")
    truth = pd.read_parquet(tmp_path / "truth.parquet")
    assert "smooth-or-featured-dr5_smooth" in catalogue.columns
    assert "smooth-or-featured-dr5_total-votes" in catalogue.columns
    assert "smooth-or-featured-dr5_smooth_true_fraction" in truth.columns
    assert "bar-dr5_true_p_asked" in truth.columns


def _write_tree(path: Path, extra: str) -> Schema:
    path.write_text(
        "name: custom\nquestions:\n"
        '  - name: smooth-or-featured\n    answers: ["smooth", "featured-or-disk", "artifact"]\n'
        + extra
    )
    return load_schema(path)


def test_unknown_question_raises_naming_it(tmp_path):
    schema = _write_tree(
        tmp_path / "tree.yaml",
        '  - name: wears-a-hat\n    answers: ["yes", "no"]\n'
        "    parent: smooth-or-featured_smooth\n",
    )
    with pytest.raises(ValueError, match="wears-a-hat"):
        simulate_survey(tmp_path / "out", schema, SMALL, seed=1)
    assert not (tmp_path / "out" / "catalogue.csv").exists()


def test_known_question_with_other_answers_raises(tmp_path):
    schema = _write_tree(
        tmp_path / "tree.yaml", '  - name: bar\n    answers: ["long", "short", "no"]\n'
    )
    with pytest.raises(ValueError, match=r"'bar'.*\['long', 'short', 'no'\]"):
        simulate_survey(tmp_path / "out", schema, SMALL, seed=1)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"n_galaxies": 0}, "n_galaxies"),
        ({"n_galaxies": 2.5}, "n_galaxies"),
        ({"n_galaxies": True}, "n_galaxies"),
        ({"image_size": 8}, "image_size"),
        ({"psf_fwhm": -1.0}, "psf_fwhm"),
        ({"redshift_max": 0.01}, "redshift_max"),
        ({"smooth_fraction": 1.2}, "smooth_fraction"),
        ({"smooth_fraction": 0.7, "artifact_fraction": 0.4}, "artifact_fraction"),
        ({"volunteer_error": 0.0}, "volunteer_error"),
        ({"volunteers_low_max": 3}, "volunteers_low_max"),
        ({"pixel_scale": "0.262"}, "pixel_scale"),
        ({"sky_noise": float("nan")}, "sky_noise"),
    ],
)
def test_bad_config_values_raise_naming_the_key(overrides, field):
    with pytest.raises(ValueError, match=f"mock.{field}"):
        MockSurveyConfig(**overrides)


def test_config_accepts_yaml_style_mapping():
    config = MockSurveyConfig(**{"n_galaxies": 500, "pixel_scale": 1})
    assert config.n_galaxies == 500 and config.pixel_scale == 1
    with pytest.raises(TypeError, match="n_galaxy"):
        MockSurveyConfig(**{"n_galaxy": 500})


def test_bad_seed_or_threads_raise(tmp_path, decals):
    with pytest.raises(ValueError, match="seed"):
        simulate_survey(tmp_path, decals, SMALL, seed=-1)
    with pytest.raises(ValueError, match="threads"):
        simulate_survey(tmp_path, decals, SMALL, seed=1, threads=0)
