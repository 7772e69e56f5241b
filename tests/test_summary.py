"""The end of a run says what it found: labels saved, the supervised run's figures, the report."""

import json

import pytest

from zooflow.summary import run_summary, saving

CONFIG = {"active_learning": {"oracle": "simulated", "campaign_dir": "campaign"}}


def _saved(**numbers):
    base = {
        "description": "overall RMSE against observed vote fractions",
        "labels_saved": 0.334,
        "acquired_labels_saved": 0.52,
        "seeds": 3,
        "baseline_improved": True,
        "note": "",
    }
    return {**base, **numbers}


def test_a_saving_is_shown_with_its_interval_when_there_is_one():
    plain = saving(_saved())
    assert plain == "33% of all labels, 52% of those acquired"
    with_interval = saving(
        _saved(labels_saved_interval=[0.21, 0.4], acquired_labels_saved_interval=None)
    )
    assert with_interval == "33% [21%, 40%] of all labels, 52% of those acquired"


@pytest.mark.parametrize(
    ("improved", "note", "shown"),
    [
        (True, "bald never reached random's final 0.164", "not reached (bald never reached"),
        (False, "random did not improve on its first round", "n/a (random did not improve"),
    ],
)
def test_an_undefined_saving_is_never_nan_percent(improved, note, shown):
    numbers = _saved(labels_saved=None, acquired_labels_saved=None, baseline_improved=improved)
    text = saving({**numbers, "note": note})
    assert text.startswith(shown) and "nan" not in text


def test_the_summary_reads_the_runs_results_and_gives_the_report_command(tmp_path):
    (tmp_path / "results" / "al").mkdir(parents=True)
    (tmp_path / "results" / "al" / "labels_saved.json").write_text(
        json.dumps({"bald": {"rmse": _saved(labels_saved_interval=[0.2, 0.45])}})
    )
    (tmp_path / "results" / "full" / "evaluation").mkdir(parents=True)
    (tmp_path / "results" / "full" / "evaluation" / "summary.json").write_text(
        json.dumps(
            {
                "n_galaxies": 301,
                "rmse": 0.1702,
                "smooth_or_featured_confident_accuracy": None,
                "smooth_or_featured_confident_galaxies": 0,
                "coverage_error_at_0.2N_mean": 0.033,
            }
        )
    )
    text = run_summary(CONFIG, {"all", "full"}, ["my.yaml"], workdir=tmp_path)
    assert (
        "Labels bald saved against random (overall RMSE against observed vote fractions, "
        "3 seed(s)): 33% [20%, 45%] of all labels, 52% of those acquired" in text
    )
    assert (
        "Supervised run (results/full, 301 test galaxies): smooth-or-featured accuracy n/a (no "
        "confident galaxies), mean coverage error at e = 0.2 N 3.3%, RMSE 0.170" in text
    )
    assert "snakemake --report report.html all full --configfile my.yaml" in text
    assert "nan" not in text.lower()
    # The default target alone: no supervised figures, but its report takes in the full run
    # that exists, and a folder without one gets the plain command.
    default = run_summary(CONFIG, set(), [], workdir=tmp_path)
    assert "Supervised run" not in default
    assert default.endswith("snakemake --report report.html all full")
    assert run_summary(CONFIG, workdir=tmp_path / "elsewhere").endswith(
        "snakemake --report report.html"
    )


def test_a_campaign_says_where_the_next_list_is(tmp_path):
    folder = tmp_path / "campaign" / "round_1"
    folder.mkdir(parents=True)
    (folder / "to_label.csv").write_text("rank,id_str\n1,a\n2,b\n")
    text = run_summary(
        {"active_learning": {**CONFIG["active_learning"], "oracle": "campaign"}}, workdir=tmp_path
    )
    assert f"2 galaxies to label in {folder / 'to_label.csv'}" in text
    assert f"votes in {folder / 'votes.csv'}" in text


def test_a_prediction_only_run_says_how_many_galaxies_and_where_the_tables_are(tmp_path):
    import pandas as pd

    release = tmp_path / "results" / "predictions" / "release"
    release.mkdir(parents=True)
    pd.DataFrame({"id_str": ["a", "b", "c"]}).to_parquet(release / "catalogue_friendly.parquet")
    config = {**CONFIG, "predict": {"model": "../first/results/full"}}
    text = run_summary(config, {"all"}, workdir=tmp_path)
    assert "Predicted 3 galaxies with ../first/results/full (nothing trained)" in text
    assert "catalogue_friendly.parquet (and .csv)" in text
    assert "Labels" not in text
