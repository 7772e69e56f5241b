"""Metrics on cases small enough to compute by hand, and calibration on simulated votes."""

import numpy as np
import pandas as pd
import pytest

from zooflow.metrics import (
    _classification_scores,
    confident_table,
    coverage_error_at,
    coverage_table,
    dirichlet_coverage,
    regression_table,
)
from zooflow.schema import load_schema


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    path = tmp_path_factory.mktemp("tree") / "tree.yaml"
    path.write_text(
        "name: small\nquestions:\n"
        "  - {name: shape, answers: ['smooth', 'featured']}\n"
        "  - {name: bar, answers: ['yes', 'no'], parent: shape_featured}\n"
    )
    return load_schema(path)


def test_rmse_and_mae_by_hand(tree):
    # Galaxy 0: 3 smooth of 4, no bar question. Galaxy 1: 1 of 4 smooth, bar 2 of 3.
    votes = np.array([[3, 1, 0, 0], [1, 3, 2, 1]])
    predicted = np.array([[0.5, 0.5, 0.5, 0.5], [0.25, 0.75, 0.5, 0.5]])
    table = regression_table(votes, predicted, tree, min_votes=1).set_index("answer")
    # smooth errors: 0.5-0.75=-0.25, 0.25-0.25=0 -> RMSE sqrt(0.0625/2), MAE 0.125
    assert table.loc["shape_smooth", "rmse"] == pytest.approx(np.sqrt(0.0625 / 2))
    assert table.loc["shape_smooth", "mae"] == pytest.approx(0.125)
    # bar: only galaxy 1 was asked: |0.5 - 2/3|
    assert table.loc["bar_yes", "n_galaxies"] == 1
    assert table.loc["bar_yes", "mae"] == pytest.approx(1 / 6)
    # overall: errors 0.25, 0.25, 0, 0, 1/6, 1/6
    errors = np.array([0.25, 0.25, 0, 0, 1 / 6, 1 / 6])
    assert table.loc["overall", "rmse"] == pytest.approx(np.sqrt(np.mean(errors**2)))
    assert table.loc["overall", "n_galaxies"] == 6


def test_min_votes_drops_thinly_answered_questions(tree):
    votes = np.array([[3, 1, 0, 0], [1, 3, 2, 1]])
    predicted = np.full((2, 4), 0.5)
    table = regression_table(votes, predicted, tree, min_votes=4).set_index("answer")
    assert table.loc["shape_smooth", "n_galaxies"] == 2
    assert table.loc["bar_yes", "n_galaxies"] == 0  # 3 answers < 4
    assert np.isnan(table.loc["bar_yes", "rmse"])


def test_truth_is_scored_on_the_same_galaxies(tree):
    votes = np.array([[3, 1, 0, 0], [1, 3, 2, 1]])
    predicted = np.full((2, 4), 0.5)
    truth = np.array([[0.7, 0.3, 0.9, 0.1], [0.2, 0.8, 0.6, 0.4]])
    table = regression_table(votes, predicted, tree, min_votes=1, truth=truth).set_index("answer")
    assert table.loc["shape_smooth", "mae_truth"] == pytest.approx((0.2 + 0.3) / 2)
    # Galaxy 0 never saw the bar question, so its true bar fraction is not scored.
    assert table.loc["bar_yes", "mae_truth"] == pytest.approx(0.1)


def test_calibrated_predictions_have_matching_coverage():
    rng = np.random.default_rng(1)
    g, t, n = 4000, 10, 40
    rho = rng.uniform(0.1, 0.9, size=g)
    k = rng.binomial(n, rho)
    samples = np.repeat(rho[:, None], t, axis=1)
    table = coverage_table(k, np.full(g, n), samples)
    assert np.abs(table["predicted"] - table["observed"]).max() < 0.03
    last = table.iloc[-1]
    assert last["error_fraction"] == 1.0
    assert last["predicted"] == pytest.approx(1.0) and last["observed"] == 1.0


def test_overconfident_predictions_promise_more_than_they_deliver():
    rng = np.random.default_rng(2)
    g, n = 3000, 40
    rho = rng.uniform(0.2, 0.8, size=g)
    k = rng.binomial(n, rho)
    wrong = np.clip(rho + rng.normal(0, 0.15, size=g), 0.01, 0.99)  # confident but off
    table = coverage_table(k, np.full(g, n), np.repeat(wrong[:, None], 5, axis=1))
    at = table[np.isclose(table["error_fraction"], 0.1)].iloc[0]
    assert at["predicted"] > at["observed"] + 0.1


def test_dirichlet_coverage_uses_beta_binomial_marginals(tree):
    rng = np.random.default_rng(3)
    g, t = 3000, 4
    p = rng.uniform(0.2, 0.8, size=g)
    strength = 60.0
    alpha = np.stack([p * strength, (1 - p) * strength, np.full(g, 5.0), np.full(g, 5.0)], 1)
    n = 30
    # Votes drawn from the predicted Dirichlet-multinomial itself: coverage must match.
    shares = np.array([rng.dirichlet(a[:2]) for a in alpha])
    smooth = rng.binomial(n, shares[:, 0])
    votes = np.stack([smooth, n - smooth, np.zeros(g), np.zeros(g)], 1).astype(int)
    concentrations = np.repeat(alpha[:, :, None], t, axis=2)
    table = dirichlet_coverage(votes, concentrations, tree, min_votes=1)
    # Nobody was asked about bars, so there is no bar coverage to report.
    assert set(table["answer"]) == {"shape_smooth", "shape_featured"}
    errors = coverage_error_at(table[table["answer"] == "shape_smooth"], 0.2)
    assert errors["shape_smooth"] < 0.03


def test_confident_table_by_hand(tree):
    votes = np.array(
        [
            [9, 1, 0, 0],  # smooth, confident, predicted smooth: right
            [1, 9, 8, 1],  # featured, confident, predicted featured: right; bar yes confident
            [0, 10, 1, 9],  # featured, confident, predicted smooth: wrong; bar no
            [5, 5, 3, 2],  # not confident
        ]
    )
    predicted = np.array(
        [[0.9, 0.1, 0.5, 0.5], [0.2, 0.8, 0.7, 0.3], [0.6, 0.4, 0.7, 0.3], [0.5, 0.5, 0.5, 0.5]]
    )
    table = confident_table(votes, predicted, tree).set_index("question")
    assert table.loc["shape", "n_galaxies"] == 3
    assert table.loc["shape", "accuracy"] == pytest.approx(2 / 3)
    assert table.loc["bar", "n_galaxies"] == 2  # asked of >= half the volunteers
    assert table.loc["bar", "accuracy"] == pytest.approx(0.5)


def test_classification_scores_are_support_weighted():
    truth = np.array([0, 0, 0, 1])
    guess = np.array([0, 0, 1, 1])
    scores = _classification_scores(truth, guess, 2)
    # class 0: P=1, R=2/3; class 1: P=1/2, R=1; weights 3/4, 1/4
    assert scores["accuracy"] == pytest.approx(0.75)
    assert scores["precision"] == pytest.approx(0.75 * 1 + 0.25 * 0.5)
    assert scores["recall"] == pytest.approx(0.75 * 2 / 3 + 0.25 * 1)
    f1_0 = 2 * 1 * (2 / 3) / (1 + 2 / 3)
    f1_1 = 2 * 0.5 * 1 / 1.5
    assert scores["f1"] == pytest.approx(0.75 * f1_0 + 0.25 * f1_1)


def test_coverage_error_reads_the_0_2N_row():
    table = pd.DataFrame(
        {
            "answer": ["a", "a", "b", "b"],
            "error_fraction": [0.1, 0.2, 0.1, 0.2],
            "predicted": [0.3, 0.5, 0.3, 0.7],
            "observed": [0.3, 0.45, 0.2, 0.6],
        }
    )
    errors = coverage_error_at(table, 0.2)
    assert errors["a"] == pytest.approx(0.05) and errors["b"] == pytest.approx(0.1)
