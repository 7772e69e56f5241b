"""Acquisition functions: BALD against brute-force enumeration, baselines, registry, top_k."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import binom, dirichlet_multinomial, spearmanr

from zooflow.acquisition import (
    ACQUISITION_FUNCTIONS,
    POOL_WIDE,
    AcquisitionError,
    AcquisitionResult,
    acquire_scores,
    bald_binomial,
    binomial_entropies,
    dirichlet_multinomial_entropies,
    expected_information_gain,
    expected_predictive_information_gain,
    register,
    top_k,
    vote_compositions,
)
from zooflow.information import information_terms
from zooflow.schema import load_schema

LN2 = np.log(2.0)

# A root with 3 answers, a 2-answer child and a 4-answer grandchild: small enough to enumerate.
SMALL_TREE = """
name: small
questions:
  - name: shape
    answers: ["round", "disk", "odd"]
  - name: bar
    answers: ["yes", "no"]
    parent: shape_disk
  - name: arms
    answers: ["none", "one", "two", "many"]
    parent: bar_no
"""


@pytest.fixture(scope="module")
def small_schema(tmp_path_factory):
    path = tmp_path_factory.mktemp("tree") / "small.yaml"
    path.write_text(SMALL_TREE)
    return load_schema(path)


def entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-np.sum(p * np.log(p)))


def random_concentrations(rng, n_galaxies, n_answers, n_samples):
    """Dropout-like samples: a galaxy-level fraction jittered per sample by a galaxy's own spread,
    so the set spans confident-agreeing to confident-disagreeing galaxies; α in (1, 101) as Zoobot's head gives."""
    fractions = rng.dirichlet(np.ones(n_answers), size=n_galaxies)
    scale = rng.uniform(2, 100, size=(n_galaxies, 1, 1))
    spread = rng.uniform(0, 2, size=(n_galaxies, 1, 1))
    logits = np.log(fractions)[:, :, None] + spread * rng.normal(
        size=(n_galaxies, n_answers, n_samples)
    )
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return 1.0 + scale * probs


# --- binomial head ------------------------------------------------------------------------------


def brute_force_binomial_mi(rho: np.ndarray, n: int) -> float:
    counts = np.arange(n + 1)
    pmfs = np.array([binom.pmf(counts, n, r) for r in rho])
    return entropy(pmfs.mean(axis=0)) - np.mean([entropy(p) for p in pmfs])


def test_bald_binomial_matches_enumeration_for_small_n():
    rng = np.random.default_rng(3)
    rho = rng.uniform(size=(12, 7))
    rho[0, :3] = [0.0, 1.0, 0.5]  # boundary values must be handled exactly
    n_votes = rng.integers(0, 6, size=12)
    expected = [brute_force_binomial_mi(r, int(n)) for r, n in zip(rho, n_votes, strict=True)]
    np.testing.assert_allclose(bald_binomial(rho, n_votes), expected, rtol=0, atol=1e-9)
    # One N for everyone, and the (G, 1, T) layout of a one-output head.
    expected_n4 = [brute_force_binomial_mi(r, 4) for r in rho]
    np.testing.assert_allclose(bald_binomial(rho[:, None, :], 4), expected_n4, atol=1e-9)


@pytest.mark.parametrize("rho", [0.0, 0.05, 0.5, 0.93, 1.0])
def test_identical_binomial_samples_have_zero_mi(rho):
    samples = np.full((3, 20), rho)
    np.testing.assert_allclose(bald_binomial(samples, np.array([1, 40, 200])), 0.0, atol=1e-12)


def test_confident_disagreement_beats_agreed_uncertainty():
    uncertain = np.full(10, 0.5)
    disagreeing = np.r_[np.full(5, 0.05), np.full(5, 0.95)]
    confident = np.full(10, 0.05)
    rho = np.stack([uncertain, disagreeing, confident])

    mi = bald_binomial(rho, 200)
    # Two equally likely, almost non-overlapping vote distributions: MI → ln 2 from below.
    assert LN2 - 1e-3 < mi[1] <= LN2 + 1e-12
    assert mi[0] < 1e-12 and mi[2] < 1e-12

    # BALD vs max entropy at N = 40: the agreed-uncertain galaxy has the most uncertain votes
    # but nothing to learn, so max_entropy takes it first and BALD last.
    ids = np.array([10, 11, 12])
    bald = acquire_scores("bald", rho, head="binomial", binomial_votes=40).scores
    max_ent = acquire_scores("max_entropy", rho, head="binomial", binomial_votes=40).scores
    assert top_k(ids, max_ent, 1).tolist() == [10]
    assert top_k(ids, bald, 1).tolist() == [11]
    assert bald[0] < 1e-12 < bald[1]
    predictive, _ = binomial_entropies(rho, 40)
    np.testing.assert_allclose(max_ent, predictive)
    assert max_ent[0] == pytest.approx(entropy(binom.pmf(np.arange(41), 40, 0.5)), abs=1e-9)


def test_binomial_input_errors_name_the_row():
    rho = np.full((4, 5), 0.5)
    rho[2, 3] = 1.5
    with pytest.raises(AcquisitionError, match="row 2"):
        bald_binomial(rho, 10)
    rho[2, 3] = np.nan
    with pytest.raises(AcquisitionError, match="row 2"):
        bald_binomial(rho, 10)
    with pytest.raises(AcquisitionError, match="row 1"):
        bald_binomial(np.full((3, 5), 0.5), np.array([3, -1, 2]))
    with pytest.raises(AcquisitionError, match="shape"):
        bald_binomial(np.full((3, 2, 5), 0.5), 10)


# --- Dirichlet-multinomial head -----------------------------------------------------------------


def all_outcomes(n: int, n_answers: int) -> np.ndarray:
    """Vote splits by brute force (independent of vote_compositions)."""
    grid = itertools.product(range(n + 1), repeat=n_answers)
    return np.array([c for c in grid if sum(c) == n])


def brute_force_dm_terms(alpha: np.ndarray, n: int) -> tuple[float, float]:
    """(H[p̄], mean_t H[p_t]) for one galaxy and question; alpha is (K, T)."""
    outcomes = all_outcomes(n, alpha.shape[0])
    pmfs = np.array([dirichlet_multinomial.pmf(outcomes, a, n) for a in alpha.T])
    return entropy(pmfs.mean(axis=0)), float(np.mean([entropy(p) for p in pmfs]))


def test_vote_compositions_are_all_splits():
    for n, k in [(0, 3), (1, 2), (4, 3), (5, 4)]:
        got = vote_compositions(n, k)
        assert sorted(map(tuple, got)) == sorted(map(tuple, all_outcomes(n, k)))


def test_dirichlet_terms_match_enumeration(small_schema):
    rng = np.random.default_rng(5)
    alpha = random_concentrations(rng, 6, small_schema.n_answers, 5)
    expected_votes = 6.0
    terms = dirichlet_multinomial_entropies(alpha, small_schema, expected_votes)
    assert terms.exact.all()

    # P(asked) and N_q from first principles: chained mean fractions of the parent answers.
    fractions = np.empty(alpha.shape[:2])
    for q in small_schema.questions:
        block = alpha[:, q.indices, :]
        fractions[:, q.indices] = (block / block.sum(axis=1, keepdims=True)).mean(axis=2)
    p_disk = fractions[:, 1]
    p_bar_no = fractions[:, 4]
    p_asked = np.stack([np.ones(6), p_disk, p_disk * p_bar_no], axis=1)
    np.testing.assert_allclose(terms.p_asked, p_asked, rtol=1e-12)
    np.testing.assert_array_equal(terms.n_votes, np.floor(expected_votes * p_asked + 0.5))

    for g in range(6):
        for qi, q in enumerate(small_schema.questions):
            want = brute_force_dm_terms(alpha[g, q.indices, :], int(terms.n_votes[g, qi]))
            got = (terms.predictive_entropy[g, qi], terms.expected_entropy[g, qi])
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def test_identical_dirichlet_samples_have_zero_mi(small_schema):
    rng = np.random.default_rng(6)
    one_sample = random_concentrations(rng, 5, small_schema.n_answers, 1)
    alpha = np.repeat(one_sample, 8, axis=2)
    for limit in (10_000, 1):  # exact enumeration, then Monte Carlo everywhere
        terms = dirichlet_multinomial_entropies(alpha, small_schema, 10, exact_outcome_limit=limit)
        np.testing.assert_allclose(terms.mutual_information, 0.0, atol=1e-12)
        assert terms.predictive_entropy[:, 0].min() > 0.1  # the votes themselves are uncertain


def test_dirichlet_mi_is_non_negative_and_bounded():
    schema = load_schema("decals_dr5")
    rng = np.random.default_rng(7)
    alpha = random_concentrations(rng, 30, schema.n_answers, 6)
    for limit in (1000, 1):
        summed = information_terms(
            alpha, schema, 12, estimator="question_sum", exact_outcome_limit=limit
        )
        scores, mi = summed.mutual_information, summed.question_terms.mutual_information
        assert mi.shape == (30, schema.n_questions) and scores.shape == (30,)
        assert (mi >= 0).all()
        # MI can exceed neither ln T (samples are equally likely) nor the predictive entropy.
        assert (mi <= np.log(6) + 1e-9).all()
        terms = dirichlet_multinomial_entropies(alpha, schema, 12, exact_outcome_limit=limit)
        assert (mi <= terms.predictive_entropy + 1e-9).all()
        assert mi[:, 0].max() > 0.05  # the root question, asked of everyone, is informative


@pytest.mark.parametrize(("n_answers", "n_votes"), [(3, 12), (4, 8), (5, 6)])
def test_monte_carlo_ranks_galaxies_like_exact(n_answers, n_votes, tmp_path):
    answers = ", ".join(f'"a{i}"' for i in range(n_answers))
    path = tmp_path / "one.yaml"
    path.write_text(f"name: one\nquestions:\n  - name: q\n    answers: [{answers}]\n")
    schema = load_schema(path)
    alpha = random_concentrations(np.random.default_rng(n_answers), 150, n_answers, 10)

    exact = dirichlet_multinomial_entropies(alpha, schema, n_votes, exact_outcome_limit=10**6)
    approx = dirichlet_multinomial_entropies(alpha, schema, n_votes, exact_outcome_limit=1, seed=1)
    assert exact.exact.all() and not approx.exact.any()
    mi_exact, mi_approx = exact.mutual_information[:, 0], approx.mutual_information[:, 0]
    assert spearmanr(mi_exact, mi_approx).statistic >= 0.95
    # Unbiased, so no systematic scale error between exactly and approximately scored questions.
    assert abs(np.mean(mi_approx - mi_exact)) < 0.02
    assert spearmanr(exact.predictive_entropy, approx.predictive_entropy).statistic >= 0.95

    again = dirichlet_multinomial_entropies(alpha, schema, n_votes, exact_outcome_limit=1, seed=1)
    np.testing.assert_array_equal(again.mutual_information, approx.mutual_information)


def test_question_weights_target_one_question(small_schema):
    alpha = random_concentrations(np.random.default_rng(8), 20, small_schema.n_answers, 6)
    terms = dirichlet_multinomial_entropies(alpha, small_schema, 10)
    mi = terms.mutual_information

    summed = information_terms(alpha, small_schema, 10, estimator="question_sum")
    everything, per_question = summed.mutual_information, summed.question_terms.mutual_information
    np.testing.assert_allclose(per_question, mi)
    np.testing.assert_allclose(everything, (mi * terms.p_asked).sum(axis=1))

    bar_only = expected_information_gain(
        alpha, small_schema, 10, estimator="question_sum", question_weights={"bar": 1.0}
    )
    np.testing.assert_allclose(bar_only, terms.p_asked[:, 1] * mi[:, 1])
    weighted = acquire_scores(
        "bald",
        alpha,
        small_schema,
        expected_votes=10,
        question_weights={"bar": 2, "arms": 0.5},
        information="question_sum",
    )
    np.testing.assert_allclose(
        weighted.scores, 2 * terms.p_asked[:, 1] * mi[:, 1] + 0.5 * terms.p_asked[:, 2] * mi[:, 2]
    )
    # The joint information counts questions in or out; it cannot weigh them.
    with pytest.raises(AcquisitionError, match="question_sum"):
        acquire_scores("bald", alpha, small_schema, question_weights={"bar": 2, "arms": 0.5})
    bar_joint = acquire_scores("bald", alpha, small_schema, question_weights={"bar": 1}, seed=2)
    np.testing.assert_allclose(
        bar_joint.scores,
        expected_information_gain(
            alpha, small_schema, 40, np.random.default_rng([2, 1]), question_weights={"bar": 1}
        ),
    )

    with pytest.raises(AcquisitionError, match=r"spiral.*shape"):
        expected_information_gain(
            alpha, small_schema, 10, estimator="question_sum", question_weights={"spiral": 1.0}
        )
    with pytest.raises(AcquisitionError, match="spiral"):
        acquire_scores("bald", alpha, small_schema, question_weights={"spiral": 1.0})


def test_question_never_asked_contributes_nothing(small_schema):
    rng = np.random.default_rng(9)
    alpha = random_concentrations(rng, 4, small_schema.n_answers, 6)
    # Galaxies 0 and 1: every sample says "round", so bar and arms are never asked.
    alpha[:2, 1, :] = 1e-9
    alpha[:2, 0, :] = 100.0
    # Make the child questions as contentious as possible, to show P(asked) still wins.
    alpha[:, 3:5, :3] = [[100.0], [1.0]]
    alpha[:, 3:5, 3:] = [[1.0], [100.0]]
    terms = dirichlet_multinomial_entropies(alpha, small_schema, 40)
    assert (terms.p_asked[:2, 1:] < 1e-9).all()
    assert (terms.n_votes[:2, 1:] == 0).all()
    np.testing.assert_array_equal(terms.mutual_information[:2, 1:], 0.0)
    bar_scores = expected_information_gain(
        alpha, small_schema, 40, estimator="question_sum", question_weights={"bar": 1}
    )
    np.testing.assert_array_equal(bar_scores[:2], 0.0)
    assert (bar_scores[2:] > 0).all()


def test_dirichlet_input_errors(small_schema):
    alpha = np.full((3, small_schema.n_answers, 4), 2.0)
    with pytest.raises(AcquisitionError, match="9 answers"):
        expected_information_gain(alpha[:, :5], small_schema, 10, estimator="question_sum")
    alpha[1, 4, 2] = -1.0
    with pytest.raises(AcquisitionError, match=r"row 1, answer 'bar_no'"):
        expected_information_gain(alpha, small_schema, 10, estimator="question_sum")
    with pytest.raises(AcquisitionError, match="schema"):
        acquire_scores("bald", np.full((3, 9, 4), 2.0), None)


# --- baselines, registry and top_k --------------------------------------------------------------


def test_random_is_seeded(small_schema):
    alpha = np.full((50, small_schema.n_answers, 3), 2.0)
    first = acquire_scores("random", alpha, small_schema, seed=4)
    again = acquire_scores("random", alpha, small_schema, seed=4)
    other = acquire_scores("random", alpha, small_schema, seed=5)
    ids = np.arange(50)
    assert first.per_question is None
    assert top_k(ids, first.scores, 10).tolist() == top_k(ids, again.scores, 10).tolist()
    assert top_k(ids, first.scores, 10).tolist() != top_k(ids, other.scores, 10).tolist()
    assert ((first.scores >= 0) & (first.scores < 1)).all()


def test_max_entropy_combines_questions_like_bald(small_schema):
    alpha = random_concentrations(np.random.default_rng(10), 15, small_schema.n_answers, 5)
    terms = dirichlet_multinomial_entropies(alpha, small_schema, 10)
    result = acquire_scores(
        "max_entropy", alpha, small_schema, expected_votes=10, question_weights={"shape": 1}
    )
    np.testing.assert_allclose(result.per_question, terms.predictive_entropy)
    np.testing.assert_allclose(result.scores, terms.predictive_entropy[:, 0])


def test_power_bald_is_seeded_and_never_takes_agreed_galaxies_first():
    # With 1 vote each sample's outcome is certain: two confident camps split 50/50 give MI ln 2,
    # identical samples give 0.
    rho = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.5, 0.5]])
    np.testing.assert_allclose(bald_binomial(rho, 1), [LN2, LN2, LN2, 0.0], atol=1e-12)

    def power(seed):
        return acquire_scores("power_bald", rho, head="binomial", binomial_votes=1, seed=seed)

    np.testing.assert_array_equal(power(3).scores, power(3).scores)
    assert not np.array_equal(power(3).scores, power(4).scores)
    np.testing.assert_allclose(power(3).per_question[:, 0], [LN2, LN2, LN2, 0.0], atol=1e-12)
    ids = np.arange(4)
    assert all(3 not in top_k(ids, power(seed).scores, 3).tolist() for seed in range(50))


def _first_pick_frequencies(strategy: str, rho: np.ndarray, draws: int = 4000) -> np.ndarray:
    """How often each galaxy is a stochastic strategy's first pick over ``draws`` seeds
    (binomial head, 10 votes)."""
    first = [
        int(
            np.argmax(
                acquire_scores(strategy, rho, head="binomial", binomial_votes=10, seed=seed).scores
            )
        )
        for seed in range(draws)
    ]
    return np.bincount(first, minlength=len(rho)) / draws


def test_power_bald_draws_in_proportion_to_mi(small_schema):
    rho = np.array([[0.2, 0.8], [0.3, 0.7], [0.4, 0.6], [0.45, 0.55]])
    mi = bald_binomial(rho, 10)
    expected = mi / mi.sum()
    assert expected.max() > 2 * expected.min()  # a spread worth testing
    # Four standard errors of a proportion estimated from 4000 draws is at most 0.032.
    np.testing.assert_allclose(_first_pick_frequencies("power_bald", rho), expected, atol=0.032)

    # The Dirichlet head: per-question MI as BALD's, and the order is BALD's once noise is removed.
    alpha = random_concentrations(np.random.default_rng(12), 30, small_schema.n_answers, 6)
    bald = acquire_scores("bald", alpha, small_schema, expected_votes=10, seed=5)
    power = acquire_scores("power_bald", alpha, small_schema, expected_votes=10, seed=5)
    np.testing.assert_allclose(power.per_question, bald.per_question)
    np.testing.assert_allclose(power.mutual_information, bald.scores)
    np.testing.assert_array_equal(bald.mutual_information, bald.scores)
    gumbel = np.random.default_rng(5).gumbel(size=30)
    np.testing.assert_allclose(np.exp(power.scores - gumbel), bald.scores, rtol=1e-9)


def test_power_epig_draws_in_proportion_to_epig(small_schema):
    # Binomial, 4 galaxies with 10 votes: EPIG is exact and its targets are the whole pool, so
    # only the Gumbel noise changes with the seed.
    rho = np.array([[0.1, 0.9, 0.5], [0.3, 0.7, 0.5], [0.4, 0.6, 0.5], [0.5, 0.52, 0.48]])
    epig_value = acquire_scores("epig", rho, head="binomial", binomial_votes=10, seed=0).scores
    expected = epig_value / epig_value.sum()
    assert expected.max() > 2 * expected.min()  # a spread worth testing
    # Four standard errors of a proportion estimated from 4000 draws is at most 0.032.
    np.testing.assert_allclose(_first_pick_frequencies("power_epig", rho), expected, atol=0.032)

    # The Dirichlet head: EPIG's order once the seeded noise is removed, and a pool-wide score.
    alpha = random_concentrations(np.random.default_rng(15), 30, small_schema.n_answers, 6)
    epig_scores = acquire_scores("epig", alpha, small_schema, expected_votes=3, seed=5).scores
    power = acquire_scores("power_epig", alpha, small_schema, expected_votes=3, seed=5)
    again = acquire_scores("power_epig", alpha, small_schema, expected_votes=3, seed=5)
    np.testing.assert_array_equal(power.scores, again.scores)
    gumbel = np.random.default_rng([5, 3]).gumbel(size=30)
    # A galaxy whose EPIG is 0 scores ln(tiny) + noise: last, but still ordered.
    np.testing.assert_allclose(np.exp(power.scores - gumbel), epig_scores, rtol=1e-9, atol=1e-300)
    assert not np.array_equal(np.argsort(power.scores), np.argsort(epig_scores))
    assert "power_epig" in POOL_WIDE


def test_registry_unknown_names_and_new_functions():
    assert {"bald", "random", "max_entropy"} <= set(ACQUISITION_FUNCTIONS)
    with pytest.raises(AcquisitionError, match=r"'balt'.*bald.*max_entropy.*random"):
        acquire_scores("balt", np.full((2, 3), 0.5), head="binomial")
    with pytest.raises(AcquisitionError, match="head"):
        acquire_scores("bald", np.full((2, 3), 0.5), head="beta")

    @register("_test_mean_rho")
    def mean_rho(predictions, schema, options):
        return AcquisitionResult(np.asarray(predictions).mean(axis=-1), None)

    try:
        rho = np.array([[0.1, 0.3], [0.9, 0.7]])
        got = acquire_scores("_test_mean_rho", rho, head="binomial")
        np.testing.assert_allclose(got.scores, [0.2, 0.8])
        with pytest.raises(AcquisitionError, match="already registered"):
            register("_test_mean_rho")(mean_rho)
    finally:
        ACQUISITION_FUNCTIONS.pop("_test_mean_rho")


def test_top_k_orders_by_score_then_id():
    ids = np.array(["g5", "g1", "g3", "g2", "g4"])
    scores = np.array([0.2, 0.9, 0.5, 0.5, 0.5])
    assert top_k(ids, scores, 3).tolist() == ["g1", "g2", "g3"]
    order = np.random.default_rng(0).permutation(5)
    assert top_k(ids[order], scores[order], 5).tolist() == ["g1", "g2", "g3", "g4", "g5"]
    assert top_k(ids, scores, 99).tolist() == ["g1", "g2", "g3", "g4", "g5"]
    assert top_k(ids, scores, 0).tolist() == []
    with pytest.raises(AcquisitionError, match="g3"):
        top_k(ids, np.array([0.2, 0.9, np.nan, 0.5, 0.5]), 2)
    with pytest.raises(AcquisitionError, match="unique"):
        top_k(np.array([1, 2, 2]), np.zeros(3), 2)


def test_bald_scores_the_whole_vote_vector_and_epig_a_sample_of_the_pool(small_schema):
    alpha = random_concentrations(np.random.default_rng(13), 30, small_schema.n_answers, 6)
    bald = acquire_scores("bald", alpha, small_schema, expected_votes=6, seed=3)
    joint = expected_information_gain(alpha, small_schema, 6, np.random.default_rng([3, 1]))
    np.testing.assert_allclose(bald.scores, joint)
    summed = acquire_scores(
        "bald", alpha, small_schema, expected_votes=6, seed=3, information="question_sum"
    )
    np.testing.assert_allclose(
        summed.scores,
        expected_information_gain(
            alpha, small_schema, 6, np.random.default_rng([3, 1]), estimator="question_sum"
        ),
    )
    with pytest.raises(AcquisitionError, match="information estimator"):
        acquire_scores("bald", alpha, small_schema, information="sum")

    scored = acquire_scores("epig", alpha, small_schema, expected_votes=3, seed=3, epig_targets=10)
    rng = np.random.default_rng([3, 2])
    targets = np.sort(rng.choice(30, size=10, replace=False))
    want = expected_predictive_information_gain(alpha, alpha[targets], small_schema, 3, rng).epig
    np.testing.assert_allclose(scored.scores, want)
    assert scored.per_question is None and (scored.scores >= 0).all()

    rho = np.random.default_rng(14).beta(0.6, 0.6, size=(25, 8))
    binomial = acquire_scores("epig", rho, head="binomial", binomial_votes=10, seed=1)
    again = acquire_scores("epig", rho, head="binomial", binomial_votes=10, seed=1)
    np.testing.assert_array_equal(binomial.scores, again.scores)
    assert binomial.scores.shape == (25,) and (binomial.scores >= 0).all()
