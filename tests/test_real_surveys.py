"""The shipped real-survey configurations run on catalogues written in the published formats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, TINY_CONFIG, copy_workflow, run_snakemake
from zooflow.mock import MockSurveyConfig, simulate_survey
from zooflow.published import write_decals, write_gz2
from zooflow.schema import load_schema

TINY_REAL = REPO / "tests" / "data" / "tiny_real.yaml"

SURVEYS = {
    # config, tree and suffix the mock is rendered with, writer, id column of the published table
    "gz2": ("config/gz2.yaml", ("gz2", ""), write_gz2, "dr7objid"),
    "decals": ("config/decals.yaml", ("decals_dr5", "-dr5"), write_decals, "id_str"),
}


def published_survey(survey: str, workdir: Path, n_galaxies: int = 48) -> pd.DataFrame:
    """A mock survey in the survey's published format under ``workdir/data``; its table."""
    _, (tree, suffix), writer, _ = SURVEYS[survey]
    mock_dir = workdir / "mock"
    simulate_survey(
        mock_dir,
        load_schema(tree, suffix),
        MockSurveyConfig(n_galaxies=n_galaxies, image_size=32),
        7,
    )
    path = writer(mock_dir, workdir / "data")
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str)


def test_the_published_formats_hold_what_the_configs_name(tmp_path: Path):
    gz2 = published_survey("gz2", tmp_path / "gz2", n_galaxies=6)
    # 18 digits: more than a float64 keeps.
    assert all(len(i) == 18 and int(float(i)) != int(i) for i in gz2["dr7objid"])
    assert "t03_bar_a06_bar_count" in gz2.columns and "t03_bar_a06_bar_debiased" in gz2.columns
    images = tmp_path / "gz2" / "data" / "gz2_images"
    assert sorted(p.name for p in images.iterdir()) == sorted(f"{i}.jpg" for i in gz2["dr7objid"])

    decals = published_survey("decals", tmp_path / "decals", n_galaxies=6)
    assert decals["id_str"].str.match(r"^J\d{6}\.\d{2}[+-]\d{6}\.\d$").all()
    assert {"bar-dr5_strong", "bar-dr5_total-votes", "bar-dr5_strong_fraction"} <= set(
        decals.columns
    )
    assert all(
        (tmp_path / "decals" / "data" / "decals_images" / f).is_file() for f in decals["file_loc"]
    )


@pytest.mark.parametrize("survey", sorted(SURVEYS))
def test_a_shipped_real_survey_configuration_plans(survey: str, tmp_path: Path):
    """GZ2's file_template "{dr7objid}.jpg" once stopped Snakemake as an unknown wildcard."""
    workdir = copy_workflow(tmp_path / "workflow")
    published_survey(survey, workdir, n_galaxies=6)
    config = SURVEYS[survey][0]
    plan = run_snakemake(workdir, "all", "full", "-n", "--configfile", config, str(TINY_REAL))
    assert "ingest" in plan.stdout and "release_tables" in plan.stdout


@pytest.mark.slow
@pytest.mark.parametrize("survey", sorted(SURVEYS))
def test_a_shipped_real_survey_configuration_runs_end_to_end(survey: str, tmp_path: Path):
    workdir = copy_workflow(tmp_path / "workflow")
    table = published_survey(survey, workdir)
    config, (tree, suffix), _, id_column = SURVEYS[survey]
    run_snakemake(workdir, "full", "--configfile", config, str(TINY_REAL), timeout=900)

    results = workdir / "results"
    assert pd.read_csv(results / "data" / "rejected.csv").empty
    catalogue = pd.read_parquet(results / "data" / "catalogue.parquet")
    # Ids come through exactly as the published table wrote them.
    assert catalogue["id_str"].tolist() == table[id_column].astype(str).tolist()

    schema = load_schema(tree, suffix)
    released = []
    for split in ("test", "val", "initial", "pool"):
        friendly = pd.read_parquet(results / "full" / "release" / f"{split}_friendly.parquet")
        advanced = pd.read_parquet(results / "full" / "release" / f"{split}_advanced.parquet")
        posteriors = pd.read_parquet(results / "full" / f"{split}_posteriors.parquet")
        assert friendly["id_str"].tolist() == posteriors["id_str"].tolist()
        assert list(friendly.columns) == ["id_str"] + [f"{c}_fraction" for c in schema.label_cols]
        # The release's fractions are the run's own posterior means.
        for column in schema.label_cols:
            pd.testing.assert_series_equal(
                advanced[f"{column}_fraction"],
                posteriors[f"{column}_fraction"],
                check_exact=False,
                atol=1e-6,
                check_names=False,
            )
        released += friendly["id_str"].tolist()
    assert sorted(released) == sorted(catalogue["id_str"])


@pytest.mark.slow
def test_a_given_model_predicts_a_catalogue_without_votes_and_trains_nothing(
    tiny_full_run: Path, tmp_path: Path
):
    import h5py
    import yaml

    from zooflow.posteriors import read_predictions

    workdir = copy_workflow(tmp_path / "workflow")
    mock = tiny_full_run / "results" / "data" / "mock"
    # The tiny run's own galaxies, as a catalogue of images with no vote columns at all.
    catalogue = pd.read_csv(mock / "catalogue.csv", dtype=str)[["id_str", "file_loc"]]
    catalogue.to_csv(workdir / "unlabelled.csv", index=False)
    settings = {
        "data": {
            "source": "catalogue",
            "catalogue": "unlabelled.csv",
            "images": str(mock / "images"),
        },
        "predict": {"model": str(tiny_full_run / "results" / "full")},
        "representations": {"enabled": True, "pca_components": 5},
        "similar": {"ids": [catalogue["id_str"].iloc[0]], "k": 3},
    }
    (workdir / "predict_only.yaml").write_text(yaml.safe_dump(settings))
    configfiles = ["--configfile", str(TINY_CONFIG), "predict_only.yaml"]

    run = run_snakemake(workdir, *configfiles, timeout=900)
    ran = run.stdout + run.stderr
    assert "rule predict:" in ran and "rule train:" not in ran and "rule pretrain:" not in ran
    assert f"Predicted {len(catalogue)} galaxies with" in ran  # the end-of-run summary
    release = workdir / "results" / "predictions" / "release"
    friendly = pd.read_parquet(release / "catalogue_friendly.parquet")
    advanced = pd.read_parquet(release / "catalogue_advanced.parquet")
    assert sorted(friendly["id_str"]) == sorted(catalogue["id_str"])
    assert (
        pd.read_csv(release / "catalogue_friendly.csv", dtype=str)["id_str"] == friendly["id_str"]
    ).all()
    assert advanced["smooth-or-featured_smooth_proportion-asked"].eq(1).all()
    # Representations from the same pass: every galaxy once, and a 5-component copy.
    represented = workdir / "results" / "predictions" / "representations"
    features = pd.concat(
        pd.read_parquet(represented / f"{split}.parquet")
        for split in ("test", "val", "initial", "pool")
    )
    compressed = pd.read_parquet(represented / "pool_pca.parquet")
    assert sorted(features["id_str"]) == sorted(catalogue["id_str"])
    assert features.shape[1] > 16 and features.iloc[:, 1:].std().max() > 0
    assert list(compressed.columns) == ["id_str"] + [f"pca_{i:02d}" for i in range(5)]
    explained = json.loads((represented / "pca.json").read_text())["explained_variance_ratio"]
    assert explained == sorted(explained, reverse=True) and 0 < sum(explained) <= 1 + 1e-9
    similar = pd.read_csv(represented / "similar.csv", dtype={"query_id": str, "id_str": str})
    assert similar["query_id"].eq(catalogue["id_str"].iloc[0]).all() and len(similar) == 3
    assert similar["similarity"].is_monotonic_decreasing and similar["similarity"].le(1).all()
    assert catalogue["id_str"].iloc[0] not in set(similar["id_str"])
    assert (represented / "similar.png").stat().st_size > 5000
    anomalies = pd.read_csv(represented / "anomalies.csv", dtype={"id_str": str})
    assert sorted(anomalies["id_str"]) == sorted(catalogue["id_str"])
    assert anomalies["rank"].tolist() == list(range(1, len(catalogue) + 1))
    assert anomalies["outlier_score"].is_monotonic_decreasing
    assert (represented / "anomalies.png").stat().st_size > 5000
    # The explorer shows the given model's predictions, every galaxy with its neighbours.
    from zooflow.explorer import read_explorer_data

    site = read_explorer_data(workdir / "results" / "explorer")
    assert sorted(site["ids"]) == sorted(catalogue["id_str"])
    assert site["neighbours"] is not None and len(site["neighbours"]) == len(catalogue)
    assert "rule explorer:" in ran

    # Same model, same galaxies, same seed: the full run's posteriors, calibrated the same way.
    ids, _, given, attrs = read_predictions(
        workdir / "results" / "predictions" / "pool_predictions.h5"
    )
    full = {}
    for split in ("test", "val", "initial", "pool"):
        split_ids, _, predictions, full_attrs = read_predictions(
            tiny_full_run / "results" / "full" / f"{split}_predictions.h5"
        )
        full.update(zip(split_ids, predictions, strict=True))
    assert attrs["temperatures"] == full_attrs["temperatures"] != "{}"
    np.testing.assert_allclose(given, np.stack([full[i] for i in ids]), rtol=1e-4)
    with h5py.File(workdir / "results" / "predictions" / "pool_predictions.h5") as f:
        assert f["votes"][:].sum() == 0

    # A configuration the model does not fit stops before any job, naming what to set.
    (workdir / "bigger.yaml").write_text("preprocess:\n  image_size: 64\n  channels: grey\n")
    (workdir / "results").rename(workdir / "results_before")
    refused = run_snakemake(workdir, *configfiles, "bigger.yaml", "-n", check=False)
    message = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "does not fit this configuration" in message
    assert "set preprocess.image_size: 32 (now 64)" in message
    assert "set preprocess.channels: rgb" in message
    assert not (workdir / "results").exists()


@pytest.mark.parametrize("head", ["dirichlet", "binomial"])
def test_a_prediction_only_plan_trains_nothing_and_releases_tables_for_dirichlet_models(
    head: str, tmp_path: Path
):
    from test_modelcard import fake_keras_file

    from zooflow.modelcard import write_model_card

    workdir = copy_workflow(tmp_path / "workflow")
    schema = load_schema("decals_dr5")
    model = fake_keras_file(tmp_path / "model.keras", units=34 if head == "dirichlet" else 1)
    write_model_card(
        model, label_cols=schema.label_cols, tree="decals_dr5", question_suffix="", head=head
    )
    (workdir / "given.yaml").write_text(f"predict: {{model: {model}}}\ntrain: {{head: {head}}}\n")
    plan = run_snakemake(workdir, "-n", "--configfile", str(TINY_CONFIG), "given.yaml")
    jobs = plan.stdout.split("Job stats:", 1)[1]
    assert "predict " in jobs and "gather_predictions" in jobs
    for rule in ("train", "pretrain", "acquire", "calibrate", "evaluate"):
        assert f"\n{rule} " not in jobs, rule
    assert ("release_catalogue" in jobs) == (head == "dirichlet")
