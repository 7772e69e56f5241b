"""Randomized PIT and per-question temperatures on votes drawn from known distributions."""

import numpy as np
import pytest
from scipy import stats

from zooflow.calibration import (
    answer_pit,
    fit_temperatures,
    pit_summary,
    pit_table,
    randomized_pit,
)
from zooflow.posteriors import apply_temperatures, mixture_count_pmf
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


def draw_votes(rng, alpha, schema, n_volunteers):
    """Votes from the tree's own generative model, one galaxy per row of α (G, A)."""
    votes = np.zeros(alpha.shape, dtype=np.int64)
    for q, question in enumerate(schema.questions):
        parent = schema.parent_index[q]
        for g in range(len(alpha)):
            n = n_volunteers[g] if parent is None else votes[g, parent]
            theta = rng.dirichlet(alpha[g, question.indices])
            votes[g, question.indices] = rng.multinomial(n, theta)
    return votes


def test_the_mixture_pmf_is_scipys_beta_binomial_averaged_over_samples():
    rng = np.random.default_rng(0)
    n = np.array([0, 3, 7, 12])
    a, b = rng.uniform(0.05, 30, size=(4, 5)), rng.uniform(0.05, 30, size=(4, 5))
    pmf = mixture_count_pmf(n, a, b, 12)
    for g in range(4):
        want = stats.betabinom.pmf(np.arange(13)[:, None], n[g], a[g], b[g]).mean(axis=1)
        np.testing.assert_allclose(pmf[g], want, rtol=1e-10, atol=1e-300)
    rho = rng.uniform(size=(4, 5))
    binomial = mixture_count_pmf(n, rho, None, 12)
    want = stats.binom.pmf(np.arange(13)[:, None], n[2], rho[2]).mean(axis=1)
    np.testing.assert_allclose(binomial[2], want, rtol=1e-10)


def test_pit_is_uniform_when_counts_come_from_the_predictive():
    """Discrete counts, yet the randomized PIT is exactly uniform under the true predictive."""
    rng = np.random.default_rng(1)
    size = 20000
    n = rng.integers(3, 12, size=size)
    a, b = rng.uniform(0.3, 20, size=(size, 1)), rng.uniform(0.3, 20, size=(size, 1))
    k = rng.binomial(n, rng.beta(a[:, 0], b[:, 0]))
    pit = randomized_pit(k, n, a, b, np.random.default_rng(2))
    assert stats.kstest(pit, "uniform").pvalue > 1e-3
    share = np.mean((pit >= 0.05) & (pit <= 0.95))
    assert share == pytest.approx(0.9, abs=0.01)


def test_over_confident_predictives_put_too_few_counts_in_their_central_interval(tree):
    rng = np.random.default_rng(3)
    alpha = rng.uniform(0.5, 4, size=(3000, tree.n_answers))
    votes = draw_votes(rng, alpha, tree, rng.integers(10, 40, size=3000))
    honest = alpha[:, :, None]
    over_confident = honest * 8.0  # same mean fractions, far narrower predictive
    honest_share = pit_summary(pit_table(answer_pit(votes, honest, tree, min_votes=5)))
    over_share = pit_summary(pit_table(answer_pit(votes, over_confident, tree, min_votes=5)))
    assert honest_share["mean"] == pytest.approx(0.9, abs=0.02)
    assert over_share["mean"] < 0.8
    assert over_share["min"] <= over_share["mean"] <= over_share["pooled"] + 0.1


def test_a_temperature_per_question_undoes_a_known_over_confidence(tree):
    rng = np.random.default_rng(4)
    alpha = rng.uniform(0.5, 5, size=(4000, tree.n_answers))
    votes = draw_votes(rng, alpha, tree, rng.integers(10, 40, size=4000))
    # The shape question's concentrations are 4x too large, bar's are right.
    predicted = alpha.copy()
    predicted[:, :3] *= 4.0
    fitted = fit_temperatures(votes, predicted[:, :, None], tree)
    assert fitted["shape"]["temperature"] == pytest.approx(4.0, rel=0.1)
    assert fitted["bar"]["temperature"] == pytest.approx(1.0, abs=0.1)
    assert fitted["shape"]["log_likelihood_after"] > fitted["shape"]["log_likelihood_before"]
    calibrated = apply_temperatures(
        predicted[:, :, None], tree, {q: v["temperature"] for q, v in fitted.items()}
    )
    np.testing.assert_allclose(calibrated[:, :3, 0], alpha[:, :3], rtol=0.1)
    share = pit_summary(pit_table(answer_pit(votes, calibrated, tree, min_votes=5)))["mean"]
    assert share == pytest.approx(0.9, abs=0.02)


def test_too_few_galaxies_answering_a_question_keep_its_temperature(tree):
    votes = np.array([[5, 0, 0, 0, 0], [4, 1, 0, 1, 0]] * 15)
    fitted = fit_temperatures(votes, np.full((30, tree.n_answers, 3), 2.0), tree)
    assert fitted["bar"] == {
        "temperature": 1.0,
        "n_galaxies": 15,
        "log_likelihood_before": 0.0,
        "log_likelihood_after": 0.0,
    }
    assert fitted["shape"]["n_galaxies"] == 30 and fitted["shape"]["temperature"] != 1.0
