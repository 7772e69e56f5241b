"""What a galaxy's votes would teach us about the model: BALD over its whole vote vector.

Given dropout sample t (one network of the ensemble), the votes of a galaxy shown to N volunteers
follow the tree's generative model

    p_t(v) = Π_q DM(k_q | N_q, α_q,t),   N_q = N for a root question, otherwise the number of
                                          volunteers who gave q's parent answer (part of v),

so how many volunteers reach a question is itself random. This module holds that model (its
joint outcomes, likelihoods and draws) and the **expected information gain** (BALD: Houlsby et
al. 2011; W+20) of the whole vote vector, I(v; t) = H[p̄] − mean_t H[p_t] with p̄ = mean_t p_t.
Questions share what they say about the model, so this is not the sum of per-question terms
(:mod:`zooflow.bald`): for two questions asked of the same volunteers
I(v1, v2; t) ≤ I(v1; t) + I(v2; t). :mod:`zooflow.predictive_information` builds EPIG, what the
votes would tell us about other galaxies' votes, on the same model.

Estimators. Where the tree has few joint outcomes (small N, small trees) every outcome is
enumerated and the result is exact. Otherwise a Monte-Carlo estimate stratified over samples:
from every p_t draw S vote vectors v_ts by walking the tree (θ ~ Dirichlet(α_q,t), then
k_q ~ Multinomial(N_q, θ)), and

    I(v; t) ≈ mean_ts [ln p_t(v_ts) − ln p̄(v_ts)],

unbiased because p̄ is a finite mixture evaluated exactly (its expectation is mean_t KL(p_t ‖ p̄)),
and exactly 0 when every sample agrees. The standard error reported alongside comes from the
spread of those per-draw terms (pooled over samples, so conservative).

Cost: a galaxy's Monte-Carlo terms need T·S draws scored under all T samples, O(T²·S·A) table
look-ups (about 2 ms per galaxy for the 34-answer DECaLS tree, T = 30, S = 4, N = 40, one core).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.special import entr, gammaln, logsumexp

from zooflow.bald import (
    AcquisitionError,
    DirichletMultinomialTerms,
    combine_questions,
    dirichlet_multinomial_entropies,
    question_weight_vector,
)
from zooflow.dirichlet_multinomial import (
    DEFAULT_DRAWS_PER_SAMPLE,
    DEFAULT_EXACT_OUTCOME_LIMIT,
    check_concentrations,
    check_vote_numbers,
    log_mean_exp,
    log_rising_factorials,
    vote_compositions,
)
from zooflow.schema import Schema

# Largest temporary array (float64 elements) one chunk of galaxies may build.
CHUNK_ELEMENTS = 1 << 22


# How expected_information_gain combines a tree's questions: the information of the whole vote
# vector, or the earlier P(asked)-weighted sum of per-question terms.
ESTIMATORS = ("joint", "question_sum")


class InformationError(AcquisitionError):
    """Predictions or settings an information measure cannot score."""


# --- which questions count ----------------------------------------------------------------------


def observed_questions(schema: Schema, questions: Sequence[str] | None = None) -> tuple[int, ...]:
    """Indices (tree order) of the questions whose votes count: ``questions`` and their ancestors.

    How many volunteers reach a question is the count of its parent answer, so a question's votes
    cannot be scored without its ancestors'. ``None`` means every question.
    """
    if questions is None:
        return tuple(range(schema.n_questions))
    unknown = sorted(set(questions) - set(schema.question_names))
    if unknown:
        raise InformationError(
            f"tree {schema.name!r} has no question(s) {unknown}; it has {schema.question_names}"
        )
    keep: set[int] = set()
    for name in questions:
        q = schema.question_names.index(name)
        while q is not None and q not in keep:
            keep.add(q)
            parent = schema.parent_index[q]
            q = None if parent is None else int(schema.answer_question_index[parent])
    return tuple(sorted(keep))


def _children_of_answers(schema: Schema, observed: Sequence[int]) -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for q in observed:
        parent = schema.parent_index[q]
        if parent is not None:
            children.setdefault(parent, []).append(q)
    return children


# --- enumerating joint outcomes -------------------------------------------------------------------


def n_joint_outcomes(
    schema: Schema, n_volunteers: int, questions: Sequence[str] | None = None
) -> int:
    """How many distinct vote vectors N volunteers can produce on the (observed part of the) tree.

    Generating functions: a question reached by n volunteers has as many outcomes as the
    coefficient of x^n in Π_answers F_a(x), where F_a(x) = Σ_m x^m Π_{children c of a} O_c(m);
    exact integer arithmetic, so it is safe to compare with any limit.
    """
    observed = observed_questions(schema, questions)
    children = _children_of_answers(schema, observed)
    n = int(n_volunteers)

    @cache
    def outcomes(q: int) -> tuple[int, ...]:
        """Outcomes of question q's subtree for 0..n volunteers reaching q."""
        total = [1] + [0] * n
        for answer in range(schema.questions[q].start, schema.questions[q].stop):
            series = [1] * (n + 1)
            for child in children.get(answer, []):
                series = [s * o for s, o in zip(series, outcomes(child), strict=True)]
            total = [sum(total[i] * series[m - i] for i in range(m + 1)) for m in range(n + 1)]
        return tuple(total)

    roots = [q for q in observed if schema.parent_index[q] is None]
    return math.prod(outcomes(q)[n] for q in roots)


def joint_outcomes(
    schema: Schema, n_volunteers: int, questions: Sequence[str] | None = None
) -> np.ndarray:
    """Every vote vector N volunteers can produce, (M, A) counts in ``schema.label_cols`` order.

    Unobserved questions' columns are 0. Questions are filled in tree order, so a question's
    number of volunteers (its parent answer's count) is known when it is reached.
    """
    observed = observed_questions(schema, questions)
    outcomes = np.zeros((1, schema.n_answers), dtype=np.int64)
    for q in observed:
        question = schema.questions[q]
        parent = schema.parent_index[q]
        reached = (
            np.full(len(outcomes), int(n_volunteers)) if parent is None else outcomes[:, parent]
        )
        grown = []
        for n in np.unique(reached):
            rows = outcomes[reached == n]
            splits = vote_compositions(int(n), len(question.answers))
            block = np.repeat(rows, len(splits), axis=0)
            block[:, question.indices] = np.tile(splits, (len(rows), 1))
            grown.append(block)
        outcomes = np.concatenate(grown)
    return outcomes


# --- likelihood of vote vectors ---------------------------------------------------------------------


def check_n_volunteers(n_volunteers, n_galaxies: int) -> np.ndarray:
    """Volunteers per galaxy as int64 (G,), from one whole number >= 0 or one per galaxy."""
    return check_vote_numbers(n_volunteers, n_galaxies, InformationError, "n_volunteers")


def tree_log_likelihood(alpha: np.ndarray, counts: np.ndarray, schema: Schema) -> np.ndarray:
    """ln p_t(v) for every galaxy, sample and vote vector: (G, T, M).

    ``alpha`` is (G, A, T); ``counts`` is (M, A) shared by every galaxy or (G, M, A) per galaxy,
    tree-consistent (a question's answers add up to its parent answer's count; questions left out
    are all zero and contribute nothing). Per question,

        ln DM(k; n, α) = ln n! − Σ_a ln k_a! + Σ_a [ln Γ(α_a + k_a) − ln Γ(α_a)]
                         − [ln Γ(α_0 + n) − ln Γ(α_0)],   n = Σ_a k_a,  α_0 = Σ_a α_a,

    the Γ ratios read from tables of rising factorials.
    """
    counts = np.asarray(counts, dtype=np.int64)
    shared = counts.ndim == 2
    n_galaxies, n_answers, n_samples = alpha.shape
    n_questions = schema.n_questions
    totals = np.stack([counts[..., q.indices].sum(axis=-1) for q in schema.questions], axis=-1)
    n_max = int(totals.max(initial=0))  # a question's total bounds each of its answers' counts
    coefficient = gammaln(totals + 1.0).sum(axis=-1) - gammaln(counts + 1.0).sum(axis=-1)
    answer_columns = counts + np.arange(n_answers) * (n_max + 1)
    total_columns = totals + np.arange(n_questions) * (n_max + 1)

    n_outcomes = counts.shape[-2]
    out = np.empty((n_galaxies, n_samples, n_outcomes))
    per_galaxy = n_samples * n_outcomes * (n_answers + n_questions)
    chunk = max(1, CHUNK_ELEMENTS // max(per_galaxy, 1))
    for start in range(0, n_galaxies, chunk):
        stop = min(start + chunk, n_galaxies)
        block = alpha[start:stop].transpose(0, 2, 1)  # (g, T, A)
        answer_table = log_rising_factorials(block, n_max).reshape(stop - start, n_samples, -1)
        alpha_totals = np.stack(
            [block[..., q.indices].sum(axis=-1) for q in schema.questions], axis=-1
        )
        total_table = log_rising_factorials(alpha_totals, n_max).reshape(
            stop - start, n_samples, -1
        )
        if shared:
            gained = np.take(answer_table, answer_columns, axis=2).sum(axis=-1)
            lost = np.take(total_table, total_columns, axis=2).sum(axis=-1)
            out[start:stop] = coefficient + gained - lost
        else:
            a_cols = answer_columns[start:stop].reshape(stop - start, 1, -1)
            q_cols = total_columns[start:stop].reshape(stop - start, 1, -1)
            gained = np.take_along_axis(answer_table, a_cols, axis=2)
            lost = np.take_along_axis(total_table, q_cols, axis=2)
            shape = (stop - start, n_samples, n_outcomes)
            out[start:stop] = (
                coefficient[start:stop, None, :]
                + gained.reshape(*shape, n_answers).sum(axis=-1)
                - lost.reshape(*shape, n_questions).sum(axis=-1)
            )
    return out


def _log_gamma_variates(shape_parameters: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """ln X, X ~ Gamma(α, 1), without underflow for small α: X = Y·U^(1/α), Y ~ Gamma(α + 1).

    Concentrations go down to 0.01, where Gamma(α) itself rounds to 0 about once in a thousand
    draws and a Dirichlet draw built from it would be 0/0.
    """
    y = rng.standard_gamma(shape_parameters + 1.0)
    u = rng.random(shape_parameters.shape)
    return np.log(y) + np.log(u) / shape_parameters


def sample_tree_votes(
    alpha: np.ndarray,
    schema: Schema,
    n_volunteers: int,
    draws_per_sample: int,
    rng: np.random.Generator,
    questions: Sequence[str] | None = None,
) -> np.ndarray:
    """Vote vectors drawn from every sample: (G, T·S, A), draw d from sample t = d // S.

    Walks the tree in order: a root question's N volunteers, each other question's volunteers
    the count of its parent answer, split by θ ~ Dirichlet(α_q,t) and a multinomial draw.
    """
    n_galaxies, n_answers, n_samples = alpha.shape
    counts = np.zeros((n_galaxies, n_samples, draws_per_sample, n_answers), dtype=np.int64)
    by_sample = alpha.transpose(0, 2, 1)[:, :, None, :]  # (G, T, 1, A)
    for q in observed_questions(schema, questions):
        question = schema.questions[q]
        parent = schema.parent_index[q]
        shape = (n_galaxies, n_samples, draws_per_sample, len(question.answers))
        log_gamma = _log_gamma_variates(
            np.broadcast_to(by_sample[..., question.indices], shape), rng
        )
        theta = np.exp(log_gamma - logsumexp(log_gamma, axis=-1, keepdims=True))
        theta /= theta.sum(axis=-1, keepdims=True)
        reached = int(n_volunteers) if parent is None else counts[..., parent]
        counts[..., question.indices] = rng.multinomial(reached, theta)
    return counts.reshape(n_galaxies, n_samples * draws_per_sample, n_answers)


# --- estimators on log-likelihoods ------------------------------------------------------------------


@dataclass(frozen=True)
class InformationEstimate:
    """Per-galaxy estimates in nats, each (G,).

    ``mutual_information`` = ``predictive_entropy`` − ``expected_entropy`` (clipped at 0);
    ``standard_error`` is 0 where the value was enumerated exactly; ``exact`` marks those rows.
    The ``question_sum`` estimator combines per-question terms, each clipped at 0 before the
    sum; it keeps them in ``question_terms`` and reports no standard error (0).
    """

    mutual_information: np.ndarray
    predictive_entropy: np.ndarray
    expected_entropy: np.ndarray
    standard_error: np.ndarray
    exact: np.ndarray
    question_terms: DirichletMultinomialTerms | None = None


def _exact_terms(log_pmf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H[p̄], mean_t H[p_t]) from ln p_t over every outcome, (G, T, M)."""
    pmf = np.exp(log_pmf)
    predictive = entr(pmf.mean(axis=1)).sum(axis=1)
    expected = -(pmf * log_pmf).sum(axis=2).mean(axis=1)
    return predictive, expected


def _monte_carlo_terms(
    log_pmf: np.ndarray, draws_per_sample: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(H[p̄], mean_t H[p_t], standard error of their difference) from draws scored by every
    sample: ``log_pmf[g, t', d]`` = ln p_t'(v_d), v_d drawn from sample d // S."""
    n_galaxies, n_samples, n_draws = log_pmf.shape
    own_sample = np.repeat(np.arange(n_samples), draws_per_sample)
    own = log_pmf[:, own_sample, np.arange(n_draws)]  # (G, D): ln p_t(v) of the drawing sample
    mixture = log_mean_exp(log_pmf, axis=1)  # (G, D): ln p̄(v)
    terms = own - mixture
    standard_error = (
        terms.std(axis=1, ddof=1) / math.sqrt(n_draws) if n_draws > 1 else 0 * own[:, 0]
    )
    return -mixture.mean(axis=1), -own.mean(axis=1), standard_error


# --- expected information gain (BALD over the whole tree) ------------------------------------------


def expected_information_gain(
    concentrations: np.ndarray,
    schema: Schema,
    n_volunteers: int | np.ndarray,
    rng: np.random.Generator | int | None = None,
    *,
    estimator: str = "joint",
    question_weights: Mapping[str, float] | None = None,
    exact_outcome_limit: int = DEFAULT_EXACT_OUTCOME_LIMIT,
    draws_per_sample: int = DEFAULT_DRAWS_PER_SAMPLE,
) -> np.ndarray:
    """BALD of the Dirichlet head, I(v; t) in nats, shape (G,): the one entry point.

    ``concentrations`` (G, A, T): Dirichlet samples in ``schema.label_cols`` order;
    ``n_volunteers``: the N volunteers a root question is shown to (one number or one per
    galaxy); ``question_weights`` as in :func:`zooflow.bald.question_weight_vector` (None: every
    question; ``{"bar": 1}``: bar alone).

    ``estimator="joint"`` (default): the information of the whole vote vector. Exact when the
    tree has at most ``exact_outcome_limit`` joint outcomes for that N (:func:`n_joint_outcomes`),
    otherwise the unbiased Monte-Carlo estimate of the module docstring with
    ``draws_per_sample`` draws per sample from ``rng`` (a Generator or a seed). The weights can
    only count a question (and, through it, its ancestors) in or out: unequal non-zero weights
    are refused.

    ``estimator="question_sum"``: the earlier score Σ_q w_q · P(q asked) · I(v_q; t), each term
    with N_q = round(N · P(asked)) votes (:func:`zooflow.bald.dirichlet_multinomial_entropies`;
    its Monte-Carlo seed is drawn from ``rng``). On dropout-like samples of the DECaLS tree at
    N = 40 the two rank galaxies alike (Spearman about 0.9), but the sum is not the same
    quantity: on small trees it is more than 3% off for most galaxies, above the joint value
    when two questions are asked of everyone and below it on deep chains.
    """
    return information_terms(
        concentrations,
        schema,
        n_volunteers,
        rng,
        estimator=estimator,
        question_weights=question_weights,
        exact_outcome_limit=exact_outcome_limit,
        draws_per_sample=draws_per_sample,
    ).mutual_information


def counted_questions(
    schema: Schema, question_weights: Mapping[str, float] | None
) -> list[str] | None:
    """The questions whose votes the joint measures count: those with a weight above 0.

    The joint information of a vote vector counts questions, it cannot weigh them: unequal
    non-zero weights only mean something to the ``question_sum`` estimator.
    """
    if not question_weights:
        return None
    weights = question_weight_vector(schema, question_weights)
    chosen = sorted({w for w in weights if w > 0})
    if len(chosen) > 1:
        raise InformationError(
            f"question_weights {dict(question_weights)} weigh questions unequally; the joint "
            "information of the votes can only count questions in (weight > 0) or out (0). "
            "Give them equal weights, or set active_learning.information: question_sum"
        )
    if not chosen:
        raise InformationError(f"question_weights {dict(question_weights)} count no question")
    return [q for q, w in zip(schema.question_names, weights, strict=True) if w > 0]


def information_terms(
    concentrations: np.ndarray,
    schema: Schema,
    n_volunteers: int | np.ndarray,
    rng: np.random.Generator | int | None = None,
    *,
    estimator: str = "joint",
    question_weights: Mapping[str, float] | None = None,
    exact_outcome_limit: int = DEFAULT_EXACT_OUTCOME_LIMIT,
    draws_per_sample: int = DEFAULT_DRAWS_PER_SAMPLE,
) -> InformationEstimate:
    """:func:`expected_information_gain` with its entropies, standard errors and exactness."""
    if estimator not in ESTIMATORS:
        raise InformationError(
            f"unknown information estimator {estimator!r}; choose from {list(ESTIMATORS)}"
        )
    alpha = check_concentrations(
        concentrations, schema, InformationError, "expected_information_gain"
    )
    n = check_n_volunteers(n_volunteers, len(alpha))
    if draws_per_sample < 1 or exact_outcome_limit < 1:
        raise InformationError("draws_per_sample and exact_outcome_limit must be >= 1")
    rng = np.random.default_rng(rng)
    if estimator == "question_sum":
        return _question_sum_terms(
            alpha, schema, n, rng, question_weights, exact_outcome_limit, draws_per_sample
        )
    observed = observed_questions(schema, counted_questions(schema, question_weights))
    names = [schema.question_names[q] for q in observed]
    size = len(alpha)
    predictive, expected = np.zeros(size), np.zeros(size)
    standard_error, exact = np.zeros(size), np.ones(size, dtype=bool)
    for value in np.unique(n):
        rows = np.flatnonzero(n == value)
        if value == 0:
            continue  # one possible outcome: nothing to learn
        if n_joint_outcomes(schema, int(value), names) <= exact_outcome_limit:
            outcomes = joint_outcomes(schema, int(value), names)
            width = alpha.shape[2] * len(outcomes) * (schema.n_answers + schema.n_questions)
            for chunk in row_chunks(rows, width):
                log_pmf = tree_log_likelihood(alpha[chunk], outcomes, schema)
                predictive[chunk], expected[chunk] = _exact_terms(log_pmf)
            continue
        exact[rows] = False
        draws = alpha.shape[2] * draws_per_sample
        for chunk in row_chunks(
            rows, alpha.shape[2] * draws * (schema.n_answers + schema.n_questions)
        ):
            counts = sample_tree_votes(
                alpha[chunk], schema, int(value), draws_per_sample, rng, names
            )
            log_pmf = tree_log_likelihood(alpha[chunk], counts, schema)
            predictive[chunk], expected[chunk], standard_error[chunk] = _monte_carlo_terms(
                log_pmf, draws_per_sample
            )
    mutual_information = np.maximum(predictive - expected, 0.0)
    return InformationEstimate(mutual_information, predictive, expected, standard_error, exact)


def _question_sum_terms(
    alpha: np.ndarray,
    schema: Schema,
    n: np.ndarray,
    rng: np.random.Generator,
    question_weights: Mapping[str, float] | None,
    exact_outcome_limit: int,
    draws_per_sample: int,
) -> InformationEstimate:
    """The ``question_sum`` estimator: per-question terms, combined with weight × P(asked)."""
    weights = question_weight_vector(schema, question_weights)
    terms = dirichlet_multinomial_entropies(
        alpha,
        schema,
        n,
        exact_outcome_limit=exact_outcome_limit,
        draws_per_sample=draws_per_sample,
        seed=int(rng.integers(2**31)),
    )
    counted = weights > 0
    return InformationEstimate(
        mutual_information=combine_questions(terms.mutual_information, terms.p_asked, weights),
        predictive_entropy=combine_questions(terms.predictive_entropy, terms.p_asked, weights),
        expected_entropy=combine_questions(terms.expected_entropy, terms.p_asked, weights),
        standard_error=np.zeros(len(alpha)),
        exact=np.full(len(alpha), bool(terms.exact[counted].all())),
        question_terms=terms,
    )


def row_chunks(rows: np.ndarray, per_row_elements: int) -> list[np.ndarray]:
    """``rows`` in pieces whose temporaries hold about ``CHUNK_ELEMENTS`` elements."""
    size = max(1, CHUNK_ELEMENTS // max(per_row_elements, 1))
    return [rows[i : i + size] for i in range(0, len(rows), size)]
