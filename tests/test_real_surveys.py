"""The shipped real-survey configurations run on catalogues written in the published formats."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, copy_workflow, run_snakemake
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
