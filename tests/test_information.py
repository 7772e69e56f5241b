"""Information in a galaxy's whole vote vector (BALD over the tree, EPIG) against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import binom, dirichlet_multinomial

from zooflow.bald import AcquisitionError
from zooflow.information import (
    InformationError,
    expected_information_gain,
    information_terms,
    joint_outcomes,
    n_joint_outcomes,
    observed_questions,
)
from zooflow.predictive_information import (
    epig,
    epig_binomial,
    expected_predictive_information_gain,
)
from zooflow.schema import load_schema

TREES = {
    # a root and a child asked of one answer's volunteers
    "child": """
name: child
questions:
  - name: shape
    answers: ["round", "disk", "odd"]
  - name: bar
    answers: ["yes", "no"]
    parent: shape_disk
""",
    # two root questions, both asked of every volunteer
    "two_roots": """
name: two_roots
questions:
  - name: shape
    answers: ["round", "disk"]
  - name: merging
    answers: ["none", "minor", "major"]
""",
    # a chain three deep
    "chain": """
name: chain
questions:
  - name: shape
    answers: ["round", "disk"]
  - name: bar
    answers: ["yes", "no"]
    parent: shape_disk
  - name: arms
    answers: ["none", "two", "many"]
    parent: bar_no
""",
    # two questions hang from the same answer
    "siblings": """
name: siblings
questions:
  - name: shape
    answers: ["round", "disk"]
  - name: bar
    answers: ["yes", "no"]
    parent: shape_disk
  - name: bulge
    answers: ["small", "big"]
    parent: shape_disk
""",
}


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trees")
    schemas = {}
    for name, text in TREES.items():
        (folder / f"{name}.yaml").write_text(text)
        schemas[name] = load_schema(folder / f"{name}.yaml")
    return schemas


def dropout_like(rng, n_galaxies, n_answers, n_samples):
    """Samples from confident-agreeing to confident-disagreeing, α in (0.5, 60)."""
    fractions = rng.dirichlet(np.ones(n_answers), size=n_galaxies)
    scale = rng.uniform(1, 60, size=(n_galaxies, 1, 1))
    spread = rng.uniform(0, 2.5, size=(n_galaxies, 1, 1))
    logits = np.log(fractions)[:, :, None] + spread * rng.normal(
        size=(n_galaxies, n_answers, n_samples)
    )
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return 0.5 + scale * probs


def every_vote_vector(schema, n):
    """All tree-consistent vote vectors, built question by question with itertools."""
    vectors = [np.zeros(schema.n_answers, dtype=int)]
    for q, question in enumerate(schema.questions):
        parent = schema.parent_index[q]
        grown = []
        for v in vectors:
            reached = n if parent is None else v[parent]
            for split in itertools.product(range(reached + 1), repeat=len(question.answers)):
                if sum(split) == reached:
                    w = v.copy()
                    w[question.indices] = split
                    grown.append(w)
        vectors = grown
    return np.array(vectors)


def tree_pmf(alpha_one_sample, schema, vectors):
    """p(v) = Π_q DM(k_q | n_q, α_q) with scipy's Dirichlet-multinomial."""
    pmf = np.ones(len(vectors))
    for question in schema.questions:
        k = vectors[:, question.indices]
        n = k.sum(axis=1)
        asked = n > 0
        pmf[asked] *= dirichlet_multinomial.pmf(
            k[asked], alpha_one_sample[question.indices], n[asked]
        )
    return pmf


def entropy(p):
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def brute_force_eig(alpha, schema, n):
    vectors = every_vote_vector(schema, n)
    pmfs = np.array([tree_pmf(alpha[:, t], schema, vectors) for t in range(alpha.shape[1])])
    np.testing.assert_allclose(pmfs.sum(axis=1), 1.0, rtol=1e-9)
    return entropy(pmfs.mean(axis=0)) - np.mean([entropy(p) for p in pmfs])


def brute_force_epig(alpha_pool, alpha_targets, schema, n):
    vectors = every_vote_vector(schema, n)
    n_samples = alpha_pool.shape[1]
    pool = np.array([tree_pmf(alpha_pool[:, t], schema, vectors) for t in range(n_samples)])
    values = []
    for alpha_target in alpha_targets:
        target = np.array([tree_pmf(alpha_target[:, t], schema, vectors) for t in range(n_samples)])
        joint = np.einsum("tm,tn->mn", pool, target) / n_samples
        independent = np.outer(pool.mean(axis=0), target.mean(axis=0))
        values.append(float((joint * np.log(joint / independent)).sum()))
    return float(np.mean(values))


CASES = [
    ("child", 2, 3),
    ("child", 5, 8),
    ("two_roots", 3, 2),
    ("two_roots", 5, 6),
    ("chain", 4, 5),
    ("chain", 5, 8),
    ("siblings", 3, 4),
    ("siblings", 5, 7),
]


def test_joint_outcomes_are_every_tree_consistent_vote_vector(trees):
    for name, schema in trees.items():
        for n in range(0, 6):
            got = joint_outcomes(schema, n)
            want = every_vote_vector(schema, n)
            assert sorted(map(tuple, got)) == sorted(map(tuple, want)), (name, n)
            assert n_joint_outcomes(schema, n) == len(want)


def test_the_number_of_outcomes_is_counted_without_enumerating():
    schema = load_schema("decals_dr5")
    assert n_joint_outcomes(schema, 2) == len(joint_outcomes(schema, 2))
    assert n_joint_outcomes(schema, 40) > 10**20  # why N = 40 needs Monte Carlo


@pytest.mark.parametrize(("tree", "n", "n_samples"), CASES)
def test_exact_information_gain_equals_brute_force(trees, tree, n, n_samples):
    schema = trees[tree]
    alpha = dropout_like(np.random.default_rng(n * 10 + n_samples), 5, schema.n_answers, n_samples)
    terms = information_terms(alpha, schema, n)
    assert terms.exact.all()
    want = [brute_force_eig(alpha[g], schema, n) for g in range(5)]
    np.testing.assert_allclose(terms.mutual_information, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("tree", "n", "n_samples"), CASES)
def test_monte_carlo_information_gain_is_within_two_percent_or_its_error(trees, tree, n, n_samples):
    schema = trees[tree]
    alpha = dropout_like(np.random.default_rng(n * 10 + n_samples), 5, schema.n_answers, n_samples)
    terms = information_terms(alpha, schema, n, rng=3, exact_outcome_limit=1, draws_per_sample=4000)
    assert not terms.exact.any()
    want = np.array([brute_force_eig(alpha[g], schema, n) for g in range(5)])
    error = np.abs(terms.mutual_information - want)
    assert (terms.standard_error > 0).all()
    assert np.all((error <= 0.02 * want) | (error <= 3 * terms.standard_error)), (error, want)


def test_samples_that_agree_carry_no_information(trees):
    schema = trees["chain"]
    one = dropout_like(np.random.default_rng(1), 4, schema.n_answers, 1)
    alpha = np.repeat(one, 6, axis=2)
    for limit in (10**6, 1):
        terms = information_terms(alpha, schema, 5, rng=0, exact_outcome_limit=limit)
        np.testing.assert_allclose(terms.mutual_information, 0.0, atol=1e-12)
        assert (terms.predictive_entropy > 0.1).all()  # the votes themselves are uncertain


def test_the_per_question_sum_is_not_the_joint_information(trees):
    """Two questions asked of the same volunteers share what they say about the model, so the
    joint information is below the sum of the two (exact per-question terms)."""
    schema = trees["two_roots"]
    alpha = dropout_like(np.random.default_rng(4), 40, schema.n_answers, 6)
    joint = expected_information_gain(alpha, schema, 5)
    alone = sum(
        expected_information_gain(alpha, schema, 5, question_weights={q: 1})
        for q in ["shape", "merging"]
    )
    assert (joint <= alone + 1e-12).all()
    assert (alone - joint > 0.03 * joint).mean() > 0.25


def test_a_question_counts_with_the_ancestors_that_decide_who_reaches_it(trees):
    schema = trees["chain"]
    assert observed_questions(schema, ["arms"]) == (0, 1, 2)
    assert observed_questions(schema, ["bar"]) == (0, 1)
    assert observed_questions(schema, None) == (0, 1, 2)
    alpha = dropout_like(np.random.default_rng(2), 6, schema.n_answers, 4)
    shape_only = expected_information_gain(alpha, schema, 4, question_weights={"shape": 1})
    want = [brute_force_eig(alpha[g][:2], load_one_question(), 4) for g in range(6)]
    np.testing.assert_allclose(shape_only, want, rtol=1e-9)
    # More votes observed can only tell more about the model.
    assert (expected_information_gain(alpha, schema, 4) >= shape_only - 1e-12).all()
    with pytest.raises(AcquisitionError, match="rings"):
        expected_information_gain(alpha, schema, 4, question_weights={"rings": 1})


def load_one_question():
    from zooflow.schema import Question, Schema

    return Schema("one", (Question("shape", ("round", "disk"), None, 0),))


def test_per_galaxy_volunteers_and_bad_input(trees):
    schema = trees["child"]
    alpha = dropout_like(np.random.default_rng(3), 4, schema.n_answers, 3)
    mixed = expected_information_gain(alpha, schema, np.array([2, 0, 4, 2]))
    assert mixed[1] == 0.0  # nobody asked: nothing to learn
    np.testing.assert_allclose(mixed[[0, 3]], expected_information_gain(alpha[[0, 3]], schema, 2))
    np.testing.assert_allclose(mixed[2], expected_information_gain(alpha[[2]], schema, 4)[0])
    # The per-question sum takes one number of volunteers per galaxy the same way.
    summed = expected_information_gain(
        alpha, schema, np.array([2, 0, 4, 2]), estimator="question_sum"
    )
    assert summed[1] == 0.0
    np.testing.assert_allclose(
        summed[[0, 3]],
        expected_information_gain(alpha[[0, 3]], schema, 2, estimator="question_sum"),
    )
    np.testing.assert_allclose(
        summed[2], expected_information_gain(alpha[[2]], schema, 4, estimator="question_sum")[0]
    )
    with pytest.raises(InformationError, match="row 1"):
        bad = alpha.copy()
        bad[1, 0, 0] = np.nan
        expected_information_gain(bad, schema, 3)
    with pytest.raises(InformationError, match="n_volunteers"):
        expected_information_gain(alpha, schema, 2.5)


def test_monte_carlo_is_seeded_and_stays_accurate_on_the_decals_tree():
    schema = load_schema("decals_dr5")
    alpha = dropout_like(np.random.default_rng(9), 12, schema.n_answers, 10)
    first = information_terms(alpha, schema, 40, rng=5)
    again = information_terms(alpha, schema, 40, rng=5)
    np.testing.assert_array_equal(first.mutual_information, again.mutual_information)
    assert not first.exact.any()
    # MI is bounded by ln T (samples equally likely) and by the predictive entropy.
    assert (first.mutual_information <= np.log(10) + 3 * first.standard_error).all()
    assert (first.mutual_information <= first.predictive_entropy).all()
    assert (first.mutual_information > 0).all()


# --- EPIG ----------------------------------------------------------------------------------------

EPIG_CASES = [("child", 3, 3), ("two_roots", 2, 4), ("chain", 3, 5), ("siblings", 2, 2)]


@pytest.mark.parametrize(("tree", "n", "n_samples"), EPIG_CASES)
def test_epig_equals_brute_force(trees, tree, n, n_samples):
    schema = trees[tree]
    rng = np.random.default_rng(n_samples)
    pool = dropout_like(rng, 4, schema.n_answers, n_samples)
    targets = dropout_like(rng, 3, schema.n_answers, n_samples)
    exact = expected_predictive_information_gain(pool, targets, schema, n, exact_pair_limit=10**6)
    assert exact.exact
    want = np.array([brute_force_epig(pool[g], targets, schema, n) for g in range(4)])
    np.testing.assert_allclose(exact.epig, want, rtol=1e-8, atol=1e-12)

    approx = expected_predictive_information_gain(
        pool, targets, schema, n, rng=1, exact_pair_limit=1, draws_per_sample=3000
    )
    assert not approx.exact
    error = np.abs(approx.epig - want)
    assert np.all((error <= 0.02 * want) | (error <= 3 * approx.standard_error)), (error, want)


def test_epig_is_bounded_by_what_the_votes_say_about_the_model(trees):
    """Data processing: v* depends on v only through the model, so I(v; v*) <= I(v; t)."""
    schema = trees["siblings"]
    rng = np.random.default_rng(11)
    pool = dropout_like(rng, 10, schema.n_answers, 5)
    targets = dropout_like(rng, 6, schema.n_answers, 5)
    value = epig(pool, targets, schema, 3, exact_pair_limit=10**6)
    assert (value <= expected_information_gain(pool, schema, 3) + 1e-12).all()
    assert (value > 0).all()
    agreeing = np.repeat(pool[:, :, :1], 5, axis=2)
    np.testing.assert_allclose(
        epig(agreeing, targets, schema, 3, exact_pair_limit=10**6), 0.0, atol=1e-12
    )


def test_epig_needs_the_same_samples_for_pool_and_targets(trees):
    schema = trees["child"]
    pool = dropout_like(np.random.default_rng(0), 2, schema.n_answers, 4)
    with pytest.raises(InformationError, match="same samples"):
        epig(pool, pool[:, :, :3], schema, 2)


def brute_force_epig_binomial(rho_pool, rho_targets, n):
    ks = np.arange(n + 1)
    pool = binom.pmf(ks[None, :], n, rho_pool[:, None])
    values = []
    for rho_target in rho_targets:
        target = binom.pmf(ks[None, :], n, rho_target[:, None])
        joint = pool.T @ target / len(rho_pool)
        independent = np.outer(pool.mean(axis=0), target.mean(axis=0))
        values.append(float((joint * np.log(joint / independent)).sum()))
    return float(np.mean(values))


@pytest.mark.parametrize(("n", "n_samples"), [(3, 4), (8, 6)])
def test_binomial_epig_equals_brute_force(n, n_samples):
    rng = np.random.default_rng(n)
    rho_pool = rng.beta(0.7, 0.7, size=(5, n_samples))
    rho_targets = rng.beta(0.7, 0.7, size=(4, n_samples))
    want = [brute_force_epig_binomial(rho_pool[g], rho_targets, n) for g in range(5)]
    np.testing.assert_allclose(epig_binomial(rho_pool, rho_targets, n), want, rtol=1e-8)
    approx = epig_binomial(
        rho_pool, rho_targets, n, rng=2, exact_pair_limit=1, draws_per_sample=3000
    )
    np.testing.assert_allclose(approx, want, rtol=0.05, atol=2e-3)
