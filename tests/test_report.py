"""What the report shows: figures with empty data say so, gallery tiles name their galaxy,
tables a person can read."""

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from zooflow import plots
from zooflow.tables import evaluation_table, labels_saved_table


@pytest.fixture()
def kept_figures(monkeypatch):
    """Keep each figure a plot function closes, to read what it drew."""
    kept = []
    close = plt.close
    monkeypatch.setattr(plots.plt, "close", kept.append)
    yield kept
    for figure in kept:
        close(figure)


def _texts(figure):
    return " ".join(t.get_text() for ax in figure.axes for t in ax.texts)


def test_figures_with_nothing_to_draw_say_why(tmp_path, kept_figures):
    plots.plot_learning_curves(
        pd.DataFrame({"strategy": [], "round": [], "n_labelled": []}), {}, tmp_path / "c.png"
    )
    by_budget = pd.DataFrame(
        {"strategy": ["bald"], "metric": ["rmse"], "stop_round": [1], "random_labels": [20]}
    ).assign(labels_saved=float("nan"), acquired_labels_saved=float("nan"))
    plots.plot_savings_by_budget(by_budget, tmp_path / "b.png")
    plots.plot_coverage(
        pd.DataFrame(columns=["answer", "error_fraction", "observed", "predicted"]),
        tmp_path / "v.png",
    )
    plots.plot_composition(pd.DataFrame(), tmp_path / "m.png")
    notes = [_texts(figure) for figure in kept_figures]
    assert "No scores yet" in notes[0]
    assert "random had not improved" in notes[1]
    assert "enough votes" in notes[2]
    assert "no acquisitions yet" in notes[3]
    assert all((tmp_path / f"{name}.png").exists() for name in "cbvm")


def test_gallery_tiles_carry_the_galaxy_id(tiny_survey, tmp_path, kept_figures):
    ids = pd.read_parquet(tiny_survey.catalogue, columns=["id_str"])["id_str"].head(4)
    scores = pd.DataFrame({"id_str": ids, "score": [0.4, 0.3, 0.2, 0.1], "mi": [4, 3, 2, 1.0]})
    scores.to_csv(tmp_path / "scores.csv", index=False)
    plots.plot_gallery(
        tmp_path / "scores.csv", tiny_survey.images, tmp_path / "g.png", n_galaxies=2
    )
    titles = [ax.get_title() for ax in kept_figures[0].axes if ax.get_title()]
    assert titles == [
        f"{ids[0]}\n4.000",
        f"{ids[1]}\n3.000",
        f"{ids[2]}\n2.000",
        f"{ids[3]}\n1.000",
    ]


def test_the_report_tables_read_as_a_person_would():
    saved = {
        "bald": {
            "rmse": {
                "description": "overall RMSE against observed vote fractions",
                "random_final": 0.2,
                "random_labels": 315.0,
                "bald_labels_needed": 210.0,
                "labels_saved": 1 / 3,
                "acquired_labels_saved": None,
                "note": "",
            }
        }
    }
    row = labels_saved_table(saved).iloc[0]
    assert row["labels saved"] == "33%" and row["acquired labels saved"] == "n/a"
    assert row["labels needed to reach it"] == 210.0
    table = evaluation_table(
        {"rmse": 0.17123, "smooth_or_featured_confident_accuracy": None, "by": {"bar": 0.5}}
    )
    assert table.values.tolist() == [
        ["rmse", "0.1712"],
        ["smooth_or_featured_confident_accuracy", "n/a"],
        ["by: bar", "0.5"],
    ]
