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


# --- evaluate_predictions end to end on a case computed here, independently -----------------


def _write_predictions(path, ids, votes, concentrations, schema):
    import h5py

    from zooflow.posteriors import STRING

    with h5py.File(path, "w") as f:
        f.create_dataset("predictions", data=concentrations.astype(np.float32))
        f.create_dataset("id_str", data=np.array(ids, dtype=object), dtype=STRING)
        f.create_dataset("votes", data=votes.astype(np.int64))
        f.create_dataset("label_cols", data=np.array(schema.label_cols, dtype=object), dtype=STRING)
        f.attrs.update(head="dirichlet", passes=concentrations.shape[2])


def _pit_share_bounds(intervals):
    """Share of PIT in [0.05, 0.95] whatever the uniforms: intervals (F(k-1), F(k))."""
    inside = sum(lo >= 0.05 and hi <= 0.95 for lo, hi in intervals)
    straddling = sum(
        not (lo >= 0.05 and hi <= 0.95) and hi > 0.05 and lo < 0.95 for lo, hi in intervals
    )
    return inside / len(intervals), (inside + straddling) / len(intervals)


def test_every_summary_field_by_hand(tmp_path):
    from scipy import stats

    from zooflow.metrics import evaluate_predictions

    (tmp_path / "tree.yaml").write_text(
        "name: small\nquestions:\n"
        "  - {name: smooth-or-featured, answers: ['smooth', 'featured-or-disk']}\n"
        "  - {name: bar, answers: ['yes', 'no'], parent: smooth-or-featured_featured-or-disk}\n"
    )
    tree = load_schema(tmp_path / "tree.yaml")

    ids = ["g0", "g1", "g2", "g3", "g4"]
    votes = np.array(
        [
            [9, 1, 1, 0],  # confident smooth; bar asked of 1 < min_votes
            [1, 9, 6, 3],  # confident featured
            [5, 5, 2, 3],  # not confident
            [0, 3, 0, 3],  # confident featured (3 of 3)
            [2, 2, 1, 1],  # not confident; bar asked of 2 < min_votes
        ]
    )
    # Two passes per galaxy: (smooth, featured, bar yes, bar no) concentrations.
    concentrations = np.array(
        [
            [[8.0, 6.0], [2.0, 2.0], [1.0, 3.0], [1.0, 1.0]],
            [[1.0, 2.0], [6.0, 8.0], [4.0, 2.0], [2.0, 2.0]],
            [[3.0, 2.0], [3.0, 4.0], [1.0, 1.0], [2.0, 1.0]],
            [[5.0, 4.0], [2.0, 3.0], [1.0, 2.0], [3.0, 2.0]],
            [[1.0, 1.0], [1.0, 3.0], [2.0, 2.0], [2.0, 2.0]],
        ]
    )
    truth = np.array(
        [
            [0.85, 0.15, 0.5, 0.5],
            [0.1, 0.9, 0.7, 0.3],
            [0.45, 0.55, 0.4, 0.6],
            [0.3, 0.7, 0.2, 0.8],
            [0.5, 0.5, 0.5, 0.5],
        ]
    )
    _write_predictions(tmp_path / "p.h5", ids, votes, concentrations, tree)
    # The truth table lists galaxies in another order, with one more galaxy: matched by id.
    order = [3, 0, 4, 2, 1]
    truth_table = pd.DataFrame(
        truth[order], columns=[f"{c}_true_fraction" for c in tree.label_cols]
    )
    truth_table.insert(0, "id_str", [ids[i] for i in order])
    extra = pd.DataFrame([["g9", 0.0, 1.0, 0.0, 1.0]], columns=truth_table.columns)
    pd.concat([truth_table, extra]).to_parquet(tmp_path / "truth.parquet")
    training = pd.DataFrame(
        [["t0", 6, 2, 0, 0], ["t1", 2, 6, 3, 3], ["t2", 4, 4, 1, 1]],
        columns=["id_str", *tree.label_cols],
    )
    training.to_csv(tmp_path / "labelled.csv", index=False)
    out = {
        name: tmp_path / f"{name}.{'json' if name == 'summary' else 'csv'}"
        for name in ("regression", "questions", "coverage", "confident", "pit", "summary")
    }
    summary = evaluate_predictions(
        tmp_path / "p.h5",
        tree,
        out,
        truth_path=tmp_path / "truth.parquet",
        labelled_path=tmp_path / "labelled.csv",
        min_votes=3,
    )

    # Which (galaxy, answer) pairs count: a question answered by at least 3 volunteers.
    totals = np.stack([votes[:, :2].sum(1), votes[:, 2:].sum(1)], axis=1)[:, [0, 0, 1, 1]]
    scored = totals >= 3
    observed = votes / np.maximum(totals, 1)
    per_pass = np.concatenate(
        [
            concentrations[:, :2] / concentrations[:, :2].sum(1, keepdims=True),
            concentrations[:, 2:] / concentrations[:, 2:].sum(1, keepdims=True),
        ],
        axis=1,
    )
    mean = per_pass.mean(axis=2)
    errors = (mean - observed)[scored]
    assert summary["n_galaxies"] == 5 and summary["head"] == "dirichlet"
    assert summary["min_votes"] == 3
    assert summary["rmse"] == pytest.approx(np.sqrt(np.mean(errors**2)))
    assert summary["mae"] == pytest.approx(np.mean(np.abs(errors)))
    assert summary["rmse_truth"] == pytest.approx(np.sqrt(np.mean(((mean - truth)[scored]) ** 2)))
    assert summary["mae_truth"] == pytest.approx(np.mean(np.abs((mean - truth)[scored])))
    # Confident (observed > 0.8): g0 smooth (predicted smooth), g1 and g3 featured
    # (predicted featured and smooth): 2 of 3 right.
    assert summary["smooth_or_featured_confident_galaxies"] == 3
    assert summary["smooth_or_featured_confident_accuracy"] == pytest.approx(2 / 3)

    def coverage_error(predictive_pmf):
        """|mean predicted − observed share| of k within E[k] ± round(0.2 N), mean over answers."""
        per_answer = []
        for a in range(4):
            rows = np.flatnonzero(scored[:, a])
            predicted, hit = [], []
            for g in rows:
                n = int(totals[g, a])
                pmf = predictive_pmf(g, a, n)
                expected = (np.arange(n + 1) * pmf).sum()
                # Edges on a count are inside (E[k] = 4 at 0.5 of 8 votes sums to 4 ± 1e-15).
                half_width = np.round(0.2 * n) + 1e-9
                window = np.abs(np.arange(n + 1) - expected) <= half_width
                predicted.append(pmf[window].sum())
                hit.append(abs(votes[g, a] - expected) <= half_width)
            per_answer.append(abs(np.mean(predicted) - np.mean(hit)))
        return float(np.mean(per_answer))

    def model_pmf(g, a, n):
        q = slice(0, 2) if a < 2 else slice(2, 4)
        alpha = concentrations[g, a]
        rest = concentrations[g, q].sum(0) - alpha
        return stats.betabinom.pmf(np.arange(n + 1)[:, None], n, alpha, rest).mean(axis=1)

    def truth_pmf(g, a, n):
        return stats.binom.pmf(np.arange(n + 1), n, truth[g, a])

    assert summary["coverage_error_at_0.2N_mean"] == pytest.approx(coverage_error(model_pmf))

    def pit_bounds(pmf_of):
        per_answer = []
        for a in range(4):
            intervals = []
            for g in np.flatnonzero(scored[:, a]):
                cdf = np.cumsum(pmf_of(g, a, int(totals[g, a])))
                k = votes[g, a]
                intervals.append((cdf[k - 1] if k > 0 else 0.0, cdf[k]))
            per_answer.append(_pit_share_bounds(intervals))
        return np.mean([b[0] for b in per_answer]), np.mean([b[1] for b in per_answer])

    low, high = pit_bounds(model_pmf)
    pit = summary["pit_central_90"]
    assert low - 1e-9 <= pit["mean"] <= high + 1e-9
    pit_csv = pd.read_csv(out["pit"]).set_index("answer")
    assert pit["mean"] == pytest.approx(pit_csv["central_share"].mean())
    assert pit["min"] == pytest.approx(pit_csv["central_share"].min())
    assert pit_csv.loc["bar_yes", "n_counts"] == 3
    assert questions_first_row(out["questions"]) == "smooth-or-featured"

    # The training-mean baseline: mean observed fraction of the training galaxies (t0's bar,
    # asked of nobody, does not count).
    # t2's bar (2 volunteers) is below min_votes, so only t1's 3 of 6 counts there.
    base = np.array([(6 / 8 + 2 / 8 + 4 / 8) / 3, (2 / 8 + 6 / 8 + 4 / 8) / 3, 0.5, 0.5])
    base_errors = (base - observed)[scored]
    assert summary["baseline"]["rmse"] == pytest.approx(np.sqrt(np.mean(base_errors**2)))
    assert summary["baseline"]["rmse_truth"] == pytest.approx(
        np.sqrt(np.mean(((base - truth)[scored]) ** 2))
    )

    # The ceiling: the truth scored by the same rules.
    ceiling = summary["ceiling"]
    truth_errors = (truth - observed)[scored]
    assert ceiling["rmse"] == pytest.approx(np.sqrt(np.mean(truth_errors**2)))
    assert ceiling["mae"] == pytest.approx(np.mean(np.abs(truth_errors)))
    assert ceiling["smooth_or_featured_confident_accuracy"] == pytest.approx(
        1.0
    )  # g3: 0.7 featured
    assert ceiling["coverage_error_at_0.2N_mean"] == pytest.approx(coverage_error(truth_pmf))
    low, high = pit_bounds(truth_pmf)
    assert low - 1e-9 <= ceiling["pit_central_90_mean"] <= high + 1e-9
    gap = summary["gap_to_ceiling"]
    assert gap["rmse"] == pytest.approx(summary["rmse"] - ceiling["rmse"])
    assert gap["smooth_or_featured_confident_accuracy"] == pytest.approx(1.0 - 2 / 3)

    # Per question, RMSE pooled over the answers.
    questions = pd.read_csv(out["questions"]).set_index("question")
    bar_errors = (mean - observed)[:, 2:][scored[:, 2:]]
    assert questions.loc["bar", "n_pairs"] == 6
    assert questions.loc["bar", "rmse"] == pytest.approx(np.sqrt(np.mean(bar_errors**2)))
    bar_truth = (mean - truth)[:, 2:][scored[:, 2:]]
    base_bar_truth = (base - truth)[:, 2:][scored[:, 2:]]
    assert questions.loc["bar", "rmse_truth_to_baseline"] == pytest.approx(
        np.sqrt(np.mean(bar_truth**2)) / np.sqrt(np.mean(base_bar_truth**2))
    )
    # Test NLL: −ln of the mixture over passes of the whole tree's Dirichlet-multinomial.
    nll = []
    for g in range(5):
        per_pass = []
        for t in range(2):
            p = 1.0
            for q in (slice(0, 2), slice(2, 4)):
                if votes[g, q].sum() > 0:
                    p *= stats.dirichlet_multinomial.pmf(
                        votes[g, q], concentrations[g, q, t], votes[g, q].sum()
                    )
            per_pass.append(p)
        nll.append(-np.log(np.mean(per_pass)))
    assert summary["test_nll"] == pytest.approx(np.mean(nll))
    assert json_is_strict(out["summary"])


def questions_first_row(path):
    return pd.read_csv(path)["question"].iloc[0]


def json_is_strict(path):
    import json

    text = path.read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in {path}"))
    return True
