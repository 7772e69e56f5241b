"""BALD one question at a time: W+20's binomial head, and per-question Dirichlet-multinomial terms.

Predictions arrive as T Monte-Carlo-dropout samples per galaxy (Walmsley et al. 2020, "W+20").
Each sample t defines a distribution p_t(k) over the vote counts k a galaxy would receive; the
ensemble predictive is p̄(k) = mean_t p_t(k). BALD scores a galaxy by the mutual information
between the votes and the model parameters,

    MI = H[p̄] − mean_t H[p_t],        H[p] = −Σ_k p(k) ln p(k)   (nats),

which is high only when the samples are individually confident but disagree with each other.

* binomial (W+20): ρ samples, shape (G, T); p_t = Binomial(N, ρ_t) over k = 0..N votes, exact.
* Dirichlet (Zoobot / GZ DECaLS): concentrations α, shape (G, A, T), answers in
  ``schema.label_cols`` order; for each question q, p_t = Dirichlet-multinomial(N_q, α_q,t) over
  the ways N_q = round(N · P(asked)) volunteers can split between the question's answers. Their
  P(asked)-weighted sum is the ``question_sum`` estimator of
  :func:`zooflow.information.expected_information_gain`, the one entry point of Dirichlet BALD,
  whose default is the information of the whole vote vector.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.special import entr, gammaln

from zooflow.dirichlet_multinomial import (
    DEFAULT_DRAWS_PER_SAMPLE,
    DEFAULT_EXACT_OUTCOME_LIMIT,
    check_concentrations,
    check_rho,
    check_vote_numbers,
    log_mean_exp,
    log_rising_factorials,
    n_vote_compositions,
    vote_compositions,
)
from zooflow.posteriors import mean_vote_fractions
from zooflow.runlog import Progress
from zooflow.schema import Schema

# Largest temporary array (float64 elements) one vectorised chunk may build: small enough to
# stay in cache-sized pieces and bounded memory, large enough to amortise Python overhead.
_BINOMIAL_CHUNK_ELEMENTS = 1 << 18
_DM_CHUNK_ELEMENTS = 1 << 20


class AcquisitionError(ValueError):
    """Predictions or settings that an acquisition function cannot score."""


def question_weight_vector(
    schema: Schema, question_weights: Mapping[str, float] | None = None
) -> np.ndarray:
    """Per-question weights in tree order.

    ``None`` weights every question 1. A mapping weights the questions it names and gives every
    other question 0, so ``{"bar": 1}`` targets bars alone.
    """
    if question_weights is None:
        return np.ones(schema.n_questions)
    unknown = sorted(set(question_weights) - set(schema.question_names))
    if unknown:
        raise AcquisitionError(
            f"question_weights names {unknown}, which tree {schema.name!r} does not have; "
            f"its questions are {schema.question_names}"
        )
    weights = np.array([float(question_weights.get(q, 0.0)) for q in schema.question_names])
    if not np.all(np.isfinite(weights) & (weights >= 0)):
        raise AcquisitionError(f"question_weights must be finite and >= 0; got {question_weights}")
    return weights


# --- binomial head ------------------------------------------------------------------------------


def _binomial_entropies_fixed_n(rho: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(H[p̄], mean_t H[p_t]) for Binomial(n, ρ_t) vote distributions; ρ is (G, T).

    In log space, ln p_t(k) = ln C(n, k) + n ln(1 − ρ_t) + k logit(ρ_t), an outer product that
    needs one exp per element. The per-sample entropy then has a closed form apart from one
    matrix product:  H[p_t] = n·h(ρ_t) − Σ_k p_t(k) ln C(n, k),  h(ρ) = −ρ ln ρ − (1−ρ) ln(1−ρ).
    """
    n_galaxies, n_samples = rho.shape
    counts = np.arange(n + 1, dtype=np.float64)
    log_binom_coef = gammaln(n + 1.0) - gammaln(counts + 1.0) - gammaln(n - counts + 1.0)
    # ρ of exactly 0 or 1 would make the logit infinite; nudging it by one rounding step moves
    # about N × 1e-16 of probability, far below anything a ranking can see.
    tiny, below_one = np.finfo(np.float64).tiny, 1.0 - np.finfo(np.float64).epsneg

    predictive_entropy = np.empty(n_galaxies)
    expected_entropy = np.empty(n_galaxies)
    chunk = max(1, _BINOMIAL_CHUNK_ELEMENTS // (n_samples * (n + 1)))
    buffer = np.empty((chunk * n_samples, n + 1))
    for start in range(0, n_galaxies, chunk):
        stop = min(start + chunk, n_galaxies)
        size = stop - start
        clipped = np.clip(rho[start:stop], tiny, below_one).reshape(-1)
        log_one_minus = np.log1p(-clipped)
        logit = np.log(clipped) - log_one_minus
        pmf = buffer[: size * n_samples]
        np.multiply(logit[:, None], counts, out=pmf)
        pmf += (n * log_one_minus)[:, None]
        pmf += log_binom_coef
        np.exp(pmf, out=pmf)
        # n·h(ρ) uses the unclipped ρ: entr(x) = −x ln x with entr(0) = 0.
        exact_rho = rho[start:stop].reshape(-1)
        n_times_h = n * (entr(exact_rho) + entr(1.0 - exact_rho))
        per_sample = n_times_h - pmf @ log_binom_coef
        expected_entropy[start:stop] = per_sample.reshape(size, n_samples).mean(axis=1)
        mean_pmf = pmf.reshape(size, n_samples, n + 1).mean(axis=1)
        predictive_entropy[start:stop] = entr(mean_pmf).sum(axis=1)
    return predictive_entropy, expected_entropy


def binomial_entropies(
    rho_samples: np.ndarray, n_votes: int | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact (H[p̄], mean_t H[p_t]) in nats for p_t = Binomial(N, ρ_t), each shape (G,).

    ``rho_samples`` is (G, T) or (G, 1, T); ``n_votes`` is one N or one per galaxy.
    """
    rho = check_rho(rho_samples, AcquisitionError)
    votes = check_vote_numbers(n_votes, rho.shape[0], AcquisitionError, "n_votes")
    distinct = np.unique(votes)
    if len(distinct) == 1:  # the usual case: no copy of a possibly huge array
        return _binomial_entropies_fixed_n(rho, int(distinct[0]))
    predictive = np.empty(rho.shape[0])
    expected = np.empty(rho.shape[0])
    for n in distinct:
        rows = np.flatnonzero(votes == n)
        predictive[rows], expected[rows] = _binomial_entropies_fixed_n(rho[rows], int(n))
    return predictive, expected


def bald_binomial(rho_samples: np.ndarray, n_votes: int | np.ndarray) -> np.ndarray:
    """Exact BALD mutual information (nats) for the binomial head, shape (G,).

    MI = H[mean_t Binomial(N, ρ_t)] − mean_t H[Binomial(N, ρ_t)], entropies over k = 0..N votes.
    MI ≥ 0; rounding errors below zero are clipped to 0.
    """
    predictive, expected = binomial_entropies(rho_samples, n_votes)
    return np.maximum(predictive - expected, 0.0)


# --- Dirichlet-multinomial head -----------------------------------------------------------------


def _dm_entropies_exact(alpha: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact (H[p̄], mean_t H[p_t]) for one question; ``alpha`` is (G, T, K), N fixed.

    ln DM(c; N, α) = ln N! − Σ_k ln c_k! + Σ_k [ln Γ(α_k + c_k) − ln Γ(α_k)]
                     − [ln Γ(α_0 + N) − ln Γ(α_0)],   α_0 = Σ_k α_k,
    evaluated on every composition c of N by gathering from tables of rising factorials.
    """
    n_galaxies, n_samples, n_answers = alpha.shape
    outcomes = vote_compositions(n, n_answers)
    log_multinomial_coef = gammaln(n + 1.0) - gammaln(outcomes + 1.0).sum(axis=1)
    # Column of c_k in the flattened (K, N+1) table of answer k.
    table_columns = outcomes + np.arange(n_answers) * (n + 1)

    predictive = np.empty(n_galaxies)
    expected = np.empty(n_galaxies)
    chunk = max(1, _DM_CHUNK_ELEMENTS // (n_samples * len(outcomes)))
    for start in range(0, n_galaxies, chunk):
        block = alpha[start : start + chunk]
        size = block.shape[0]
        tables = log_rising_factorials(block, n).reshape(size * n_samples, -1)
        total = log_rising_factorials(block.sum(axis=2), n)[..., n].reshape(-1, 1)
        log_pmf = log_multinomial_coef - total
        for k in range(n_answers):
            log_pmf = log_pmf + np.take(tables, table_columns[:, k], axis=1)
        pmf = np.exp(log_pmf)
        per_sample = -np.einsum("im,im->i", pmf, log_pmf)
        expected[start : start + size] = per_sample.reshape(size, n_samples).mean(axis=1)
        mean_pmf = pmf.reshape(size, n_samples, -1).mean(axis=1)
        predictive[start : start + size] = entr(mean_pmf).sum(axis=1)
    return predictive, expected


def _dm_entropies_monte_carlo(
    alpha: np.ndarray, n: int, draws_per_sample: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Monte-Carlo (H[p̄], mean_t H[p_t]) for one question; ``alpha`` is (G, T, K), N fixed.

    Stratified over dropout samples: from every p_t draw S outcomes c_ts (θ ~ Dirichlet(α_t),
    c ~ Multinomial(N, θ)). Together the T·S draws are a sample of p̄, so

        H[p̄] ≈ −mean_ts ln p̄(c_ts),   mean_t H[p_t] ≈ −mean_ts ln p_t(c_ts),

    with p̄(c) = mean_t' p_t'(c) evaluated exactly. Their difference, the MI estimate, equals
    mean_t of a Monte-Carlo estimate of KL(p_t ‖ p̄): unbiased and exactly 0 when all samples agree.
    """
    n_galaxies, n_samples, n_answers = alpha.shape
    n_draws = n_samples * draws_per_sample
    predictive = np.empty(n_galaxies)
    expected = np.empty(n_galaxies)
    diagonal = np.arange(n_samples)
    chunk = max(1, _DM_CHUNK_ELEMENTS // (n_samples * n_draws * n_answers))
    for start in range(0, n_galaxies, chunk):
        block = alpha[start : start + chunk]
        size = block.shape[0]
        shapes = np.broadcast_to(
            block[:, :, None, :], (size, n_samples, draws_per_sample, n_answers)
        )
        gammas = rng.standard_gamma(shapes)
        theta = gammas / gammas.sum(axis=-1, keepdims=True)
        draws = rng.multinomial(n, theta).reshape(size, n_draws, n_answers)

        tables = log_rising_factorials(block, n).reshape(size, n_samples, -1)
        # Answer-major columns, so the sum over answers adds contiguous rows (fast in numpy).
        columns = draws.transpose(0, 2, 1) + (np.arange(n_answers) * (n + 1))[:, None]
        gathered = np.take_along_axis(tables, columns.reshape(size, 1, -1), axis=2)
        log_pmf = gathered.reshape(size, n_samples, n_answers, n_draws).sum(axis=2)
        log_pmf -= log_rising_factorials(block.sum(axis=2), n)[..., n][:, :, None]
        log_pmf += (gammaln(n + 1.0) - gammaln(draws + 1.0).sum(axis=-1))[:, None, :]
        # log_pmf[g, t', (t, s)] = ln p_t'(c_ts); the own-sample term takes t' = t.
        own = log_pmf.reshape(size, n_samples, n_samples, draws_per_sample)[:, diagonal, diagonal]
        log_mean = log_mean_exp(log_pmf, axis=1)
        predictive[start : start + size] = -log_mean.mean(axis=1)
        expected[start : start + size] = -own.reshape(size, -1).mean(axis=1)
    return predictive, expected


@dataclass(frozen=True)
class DirichletMultinomialTerms:
    """Per-question entropy terms of the Dirichlet head, each (G, Q) in tree order.

    ``exact[q]`` says whether question q was enumerated exactly for every galaxy (otherwise some
    or all galaxies used the Monte-Carlo estimate).
    """

    predictive_entropy: np.ndarray  # H[mean_t DM_t]
    expected_entropy: np.ndarray  # mean_t H[DM_t]
    p_asked: np.ndarray  # P(question asked), from the mean predicted vote fractions
    n_votes: np.ndarray  # N_q = round(expected_votes × P(asked)), integers
    exact: np.ndarray  # (Q,) bool

    @property
    def mutual_information(self) -> np.ndarray:
        """BALD MI per question, H[p̄] − mean_t H[p_t], clipped at 0 (rounding, MC noise)."""
        return np.maximum(self.predictive_entropy - self.expected_entropy, 0.0)


def dirichlet_multinomial_entropies(
    concentration_samples: np.ndarray,
    schema: Schema,
    expected_votes: float | np.ndarray,
    *,
    exact_outcome_limit: int = DEFAULT_EXACT_OUTCOME_LIMIT,
    draws_per_sample: int = DEFAULT_DRAWS_PER_SAMPLE,
    seed: int = 0,
) -> DirichletMultinomialTerms:
    """H[p̄] and mean_t H[p_t] per galaxy and question for the Dirichlet head.

    For question q, N_q = round(expected_votes × P(q asked)) (halves round up; ``expected_votes``
    one number or one per galaxy), where P(asked) is
    ``schema.p_asked`` of the mean predicted fractions. Galaxies whose question has at most
    ``exact_outcome_limit`` outcomes, C(N_q + K − 1, K − 1), are enumerated exactly; the rest
    use the stratified Monte-Carlo estimate of :func:`_dm_entropies_monte_carlo` with
    ``draws_per_sample`` draws per dropout sample from a generator seeded with
    (seed, question index, N_q), so the same inputs in the same order give the same numbers.
    """
    alpha = check_concentrations(concentration_samples, schema, AcquisitionError)
    votes = np.asarray(expected_votes, dtype=np.float64)
    if votes.shape not in ((), (alpha.shape[0],)) or not np.all(np.isfinite(votes) & (votes >= 0)):
        raise AcquisitionError(
            "expected_votes must be finite and >= 0, one number or one per galaxy; got "
            f"{expected_votes!r}"
        )
    if exact_outcome_limit < 1 or draws_per_sample < 1:
        raise AcquisitionError(
            "exact_outcome_limit and draws_per_sample must be >= 1; got "
            f"{exact_outcome_limit!r} and {draws_per_sample!r}"
        )
    n_galaxies = alpha.shape[0]
    p_asked = schema.p_asked(mean_vote_fractions(alpha, schema))
    n_votes = np.floor(np.reshape(votes, (-1, 1)) * p_asked + 0.5).astype(np.int64)

    predictive = np.zeros((n_galaxies, schema.n_questions))
    expected = np.zeros((n_galaxies, schema.n_questions))
    exact = np.ones(schema.n_questions, dtype=bool)
    progress = Progress(f"entropies of {n_galaxies} galaxies", schema.n_questions, "questions")
    for qi, question in progress.iterate(enumerate(schema.questions)):
        # (G, T, K): answers last, so each dropout sample's concentrations are contiguous.
        question_alpha = np.ascontiguousarray(alpha[:, question.indices, :].transpose(0, 2, 1))
        for n in np.unique(n_votes[:, qi]):
            if n == 0:  # one possible outcome: nothing to learn, both entropies 0
                continue
            rows = np.flatnonzero(n_votes[:, qi] == n)
            if n_vote_compositions(int(n), len(question.answers)) <= exact_outcome_limit:
                terms = _dm_entropies_exact(question_alpha[rows], int(n))
            else:
                exact[qi] = False
                rng = np.random.default_rng([seed, qi, int(n)])
                terms = _dm_entropies_monte_carlo(
                    question_alpha[rows], int(n), draws_per_sample, rng
                )
            predictive[rows, qi], expected[rows, qi] = terms
    return DirichletMultinomialTerms(predictive, expected, p_asked, n_votes, exact)


def combine_questions(
    per_question: np.ndarray, p_asked: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """One score per galaxy: Σ_q weight_q × P(q asked) × term_q; inputs (G, Q), (G, Q), (Q,)."""
    return (per_question * p_asked) @ weights
