"""Posterior summaries: both 90% intervals against scipy's quantiles of the mixture."""

import numpy as np
import pytest
from scipy import optimize, stats

from zooflow.posteriors import summarise_predictions
from zooflow.schema import load_schema


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    path = tmp_path_factory.mktemp("tree") / "tree.yaml"
    path.write_text(
        "name: small\nquestions:\n"
        "  - {name: shape, answers: ['smooth', 'featured', 'odd']}\n"
        "  - {name: bar, answers: ['yes', 'no'], parent: shape_featured}\n"
    )
    return load_schema(path)


def mixture_beta_quantile(a, b, q):
    """The q quantile of mean_t Beta(a_t, b_t), by root finding on the mixture CDF."""
    return optimize.brentq(lambda x: stats.beta.cdf(x, a, b).mean() - q, 0.0, 1.0, xtol=1e-10)


def mixture_count_quantile(n, a, b, q):
    cdf = np.cumsum(stats.betabinom.pmf(np.arange(n + 1)[:, None], n, a, b).mean(axis=1))
    return int(np.argmax(cdf >= q - 1e-12))


def test_intervals_are_the_mixtures_central_90_percent(tree):
    rng = np.random.default_rng(0)
    alpha = rng.uniform(0.3, 30, size=(6, tree.n_answers, 5))
    votes = np.array(
        [
            [10, 20, 2, 5, 15],
            [3, 4, 1, 0, 4],
            [0, 0, 0, 0, 0],
            [7, 0, 0, 0, 0],
            [1, 8, 0, 2, 6],
            [5, 5, 5, 1, 1],
        ]
    )
    table = summarise_predictions(
        np.array([f"g{i}" for i in range(6)]), alpha, tree, votes=votes, draws_per_pass=4000
    ).set_index("id_str")
    totals = np.stack([votes[:, :3].sum(1), votes[:, 3:].sum(1)], axis=1)
    for g in range(6):
        for i, col in enumerate(tree.label_cols):
            q = slice(0, 3) if i < 3 else slice(3, 5)
            a, b = alpha[g, i], alpha[g, q].sum(0) - alpha[g, i]
            row = table.loc[f"g{g}"]
            assert row[f"{col}_fraction"] == pytest.approx(np.mean(a / (a + b)), rel=1e-6)
            assert row[f"{col}_probability_lo"] == pytest.approx(
                mixture_beta_quantile(a, b, 0.05), abs=0.01
            )
            assert row[f"{col}_probability_hi"] == pytest.approx(
                mixture_beta_quantile(a, b, 0.95), abs=0.01
            )
            n = totals[g, 0 if i < 3 else 1]
            if n == 0:  # nobody answered: there is no observed fraction to predict
                assert np.isnan(row[f"{col}_observed_lo"]) and np.isnan(row[f"{col}_observed_hi"])
                continue
            assert row[f"{col}_observed_lo"] == mixture_count_quantile(n, a, b, 0.05) / n
            assert row[f"{col}_observed_hi"] == mixture_count_quantile(n, a, b, 0.95) / n
    # P(asked): bar hangs from "featured".
    np.testing.assert_allclose(table["bar_p_asked"], table["shape_featured_fraction"])


@pytest.mark.parametrize("head", ["dirichlet", "binomial"])
def test_an_empty_split_summarises_to_an_empty_table_with_every_column(tree, head):
    """A catalogue with no votes leaves test, val and initial empty; their summaries still exist."""
    outputs = tree.n_answers if head == "dirichlet" else 1
    alpha = np.random.default_rng(0).gamma(2.0, 2.0, (3, outputs, 4))
    votes = np.zeros((3, tree.n_answers), dtype=np.int64)
    full = summarise_predictions(np.array(["a", "b", "c"]), alpha, tree, votes=votes, head=head)
    empty = summarise_predictions(
        np.array([], dtype=str), alpha[:0], tree, votes=votes[:0], head=head
    )
    assert empty.empty and list(empty.columns) == list(full.columns)
