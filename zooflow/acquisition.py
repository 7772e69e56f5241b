"""Acquisition functions for active learning: which galaxies should volunteers label next?

Predictions arrive as T Monte-Carlo-dropout samples per galaxy (Walmsley et al. 2020, "W+20").
Each sample t defines a distribution p_t(k) over the vote counts k a galaxy would receive; the
ensemble predictive is p̄(k) = mean_t p_t(k). BALD scores a galaxy by the mutual information
between the votes and the model parameters,

    MI = H[p̄] − mean_t H[p_t],        H[p] = −Σ_k p(k) ln p(k)   (nats),

which is high only when the samples are individually confident but disagree with each other.
The "max_entropy" baseline keeps just the first term, so it also favours galaxies that every
sample agrees are ambiguous (nothing to learn from labelling them).

Two prediction heads are supported:

* binomial (W+20): ρ samples, shape (G, T); p_t = Binomial(N, ρ_t) over k = 0..N votes.
* Dirichlet (Zoobot / GZ DECaLS): concentrations α, shape (G, A, T), answers in
  ``schema.label_cols`` order; for each question q, p_t = Dirichlet-multinomial(N_q, α_q,t) over
  the ways N_q volunteers can split between the question's answers.

For the Dirichlet head, BALD is by default the information gain of the galaxy's whole vote
vector (``information="joint"``, :func:`zooflow.information.expected_information_gain`): the
votes of every question together, with the number of volunteers reaching a question as random as
it is. ``information="question_sum"`` keeps the earlier score, a sum of per-question terms
(:func:`bald_dirichlet_multinomial`). ``epig`` scores what a galaxy's votes would tell us about
the votes of a sample of the pool (the galaxies we will predict) rather than about the model.

Every acquisition function is registered by name in :data:`ACQUISITION_FUNCTIONS` and called
through :func:`acquire_scores`; :func:`top_k` turns scores into an ordered list of galaxy ids.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy.special import entr, gammaln

from zooflow.information import (
    DEFAULT_DRAWS_PER_SAMPLE,
    epig,
    epig_binomial,
    expected_information_gain,
    expected_predictive_information_gain,
    information_terms,
    n_vote_compositions,
    vote_compositions,
)
from zooflow.runlog import Progress
from zooflow.schema import Schema

HEADS = ("dirichlet", "binomial")
INFORMATION_ESTIMATORS = ("joint", "question_sum")
DEFAULT_EPIG_TARGETS = 200

__all__ = [
    "ACQUISITION_FUNCTIONS",
    "AcquisitionError",
    "AcquisitionResult",
    "acquire_scores",
    "bald_binomial",
    "bald_dirichlet_multinomial",
    "epig",
    "epig_binomial",
    "expected_information_gain",
    "expected_predictive_information_gain",
    "register",
    "top_k",
    "vote_compositions",
]

# Largest temporary array (float64 elements) one vectorised chunk may build: small enough to
# stay in cache-sized pieces and bounded memory, large enough to amortise Python overhead.
_BINOMIAL_CHUNK_ELEMENTS = 1 << 18
_DM_CHUNK_ELEMENTS = 1 << 20

DEFAULT_EXACT_OUTCOME_LIMIT = 1000
DEFAULT_MC_DRAWS_PER_SAMPLE = 8


class AcquisitionError(ValueError):
    """Predictions or settings that an acquisition function cannot score."""


# --- input checks -------------------------------------------------------------------------------


def _first_bad_row(bad: np.ndarray) -> int:
    """Index of the first galaxy (axis 0) with any flagged entry."""
    return int(np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))[0])


def _check_rho(rho_samples: np.ndarray) -> np.ndarray:
    rho = np.asarray(rho_samples, dtype=np.float64)
    if rho.ndim == 3 and rho.shape[1] == 1:
        rho = rho[:, 0, :]
    if rho.ndim != 2:
        raise AcquisitionError(
            f"binomial ρ samples must have shape (galaxies, samples) or (galaxies, 1, samples); "
            f"got {rho.shape}"
        )
    bad = ~((rho >= 0.0) & (rho <= 1.0))  # also catches NaN
    if bad.any():
        row = _first_bad_row(bad)
        raise AcquisitionError(
            f"binomial ρ samples: galaxy row {row} has values outside [0, 1] "
            f"(e.g. {rho[row][bad[row]][0]!r})"
        )
    return rho


def _check_votes(n_votes: int | np.ndarray, n_galaxies: int, what: str) -> np.ndarray:
    votes = np.asarray(n_votes)
    if votes.ndim == 0:
        votes = np.full(n_galaxies, votes)
    if votes.shape != (n_galaxies,):
        raise AcquisitionError(
            f"{what} must be one integer or one per galaxy ({n_galaxies},); got shape {votes.shape}"
        )
    as_float = votes.astype(np.float64)
    bad = ~(np.isfinite(as_float) & (as_float >= 0) & (as_float == np.round(as_float)))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise AcquisitionError(
            f"{what}: galaxy row {row} has {votes[row]!r}; expected a whole number >= 0"
        )
    return as_float.astype(np.int64)


def _check_concentrations(concentration_samples: np.ndarray, schema: Schema) -> np.ndarray:
    alpha = np.asarray(concentration_samples, dtype=np.float64)
    if alpha.ndim != 3 or alpha.shape[1] != schema.n_answers:
        raise AcquisitionError(
            f"Dirichlet concentrations must have shape (galaxies, {schema.n_answers} answers of "
            f"tree {schema.name!r}, samples); got {alpha.shape}"
        )
    if alpha.shape[2] < 1:
        raise AcquisitionError("Dirichlet concentrations have no dropout samples (T = 0)")
    bad = ~(np.isfinite(alpha) & (alpha > 0))
    if bad.any():
        row = _first_bad_row(bad)
        answer = int(np.flatnonzero(bad[row].any(axis=1))[0])
        raise AcquisitionError(
            f"Dirichlet concentrations: galaxy row {row}, answer {schema.label_cols[answer]!r} "
            f"has {alpha[row, answer][bad[row, answer]][0]!r}; concentrations must be finite and > 0"
        )
    return alpha


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
    rho = _check_rho(rho_samples)
    votes = _check_votes(n_votes, rho.shape[0], "n_votes")
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


def _log_rising_factorials(alpha: np.ndarray, n_max: int) -> np.ndarray:
    """ln Γ(α + n) − ln Γ(α) = Σ_{j<n} ln(α + j) for n = 0..n_max, appended as a last axis."""
    table = np.zeros(alpha.shape + (n_max + 1,))
    if n_max > 0:
        np.cumsum(np.log(alpha[..., None] + np.arange(n_max)), axis=-1, out=table[..., 1:])
    return table


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
        tables = _log_rising_factorials(block, n).reshape(size * n_samples, -1)
        total = _log_rising_factorials(block.sum(axis=2), n)[..., n].reshape(-1, 1)
        log_pmf = log_multinomial_coef - total
        for k in range(n_answers):
            log_pmf = log_pmf + np.take(tables, table_columns[:, k], axis=1)
        pmf = np.exp(log_pmf)
        per_sample = -np.einsum("im,im->i", pmf, log_pmf)
        expected[start : start + size] = per_sample.reshape(size, n_samples).mean(axis=1)
        mean_pmf = pmf.reshape(size, n_samples, -1).mean(axis=1)
        predictive[start : start + size] = entr(mean_pmf).sum(axis=1)
    return predictive, expected


def _log_mean_exp(values: np.ndarray, axis: int) -> np.ndarray:
    """ln mean exp(values) along ``axis``, shifted by the maximum so nothing overflows."""
    peak = values.max(axis=axis, keepdims=True)
    shifted = np.exp(values - peak)
    return np.log(shifted.mean(axis=axis)) + np.squeeze(peak, axis=axis)


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

        tables = _log_rising_factorials(block, n).reshape(size, n_samples, -1)
        # Answer-major columns, so the sum over answers adds contiguous rows (fast in numpy).
        columns = draws.transpose(0, 2, 1) + (np.arange(n_answers) * (n + 1))[:, None]
        gathered = np.take_along_axis(tables, columns.reshape(size, 1, -1), axis=2)
        log_pmf = gathered.reshape(size, n_samples, n_answers, n_draws).sum(axis=2)
        log_pmf -= _log_rising_factorials(block.sum(axis=2), n)[..., n][:, :, None]
        log_pmf += (gammaln(n + 1.0) - gammaln(draws + 1.0).sum(axis=-1))[:, None, :]
        # log_pmf[g, t', (t, s)] = ln p_t'(c_ts); the own-sample term takes t' = t.
        own = log_pmf.reshape(size, n_samples, n_samples, draws_per_sample)[:, diagonal, diagonal]
        log_mean = _log_mean_exp(log_pmf, axis=1)
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


def mean_predicted_fractions(concentrations: np.ndarray, schema: Schema) -> np.ndarray:
    """(G, A, T) concentrations -> (G, A) mean over samples of α_a / Σ_{a' in question} α_a'."""
    totals = np.stack(
        [concentrations[:, q.indices, :].sum(axis=1) for q in schema.questions], axis=1
    )
    return (concentrations / totals[:, schema.answer_question_index, :]).mean(axis=2)


def dirichlet_multinomial_entropies(
    concentration_samples: np.ndarray,
    schema: Schema,
    expected_votes: float,
    *,
    exact_outcome_limit: int = DEFAULT_EXACT_OUTCOME_LIMIT,
    mc_draws_per_sample: int = DEFAULT_MC_DRAWS_PER_SAMPLE,
    seed: int = 0,
) -> DirichletMultinomialTerms:
    """H[p̄] and mean_t H[p_t] per galaxy and question for the Dirichlet head.

    For question q, N_q = round(expected_votes × P(q asked)) (halves round up), where P(asked) is
    ``schema.p_asked`` of the mean predicted fractions. Galaxies whose question has at most
    ``exact_outcome_limit`` outcomes, C(N_q + K − 1, K − 1), are enumerated exactly; the rest
    use the stratified Monte-Carlo estimate of :func:`_dm_entropies_monte_carlo` with
    ``mc_draws_per_sample`` draws per dropout sample from a generator seeded with
    (seed, question index, N_q), so the same inputs in the same order give the same numbers.
    """
    alpha = _check_concentrations(concentration_samples, schema)
    if not (np.isfinite(expected_votes) and expected_votes >= 0):
        raise AcquisitionError(f"expected_votes must be finite and >= 0; got {expected_votes!r}")
    if exact_outcome_limit < 1 or mc_draws_per_sample < 1:
        raise AcquisitionError(
            "exact_outcome_limit and mc_draws_per_sample must be >= 1; got "
            f"{exact_outcome_limit!r} and {mc_draws_per_sample!r}"
        )
    n_galaxies = alpha.shape[0]
    p_asked = schema.p_asked(mean_predicted_fractions(alpha, schema))
    n_votes = np.floor(expected_votes * p_asked + 0.5).astype(np.int64)

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
                    question_alpha[rows], int(n), mc_draws_per_sample, rng
                )
            predictive[rows, qi], expected[rows, qi] = terms
    return DirichletMultinomialTerms(predictive, expected, p_asked, n_votes, exact)


def combine_questions(
    per_question: np.ndarray, p_asked: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """One score per galaxy: Σ_q weight_q × P(q asked) × term_q; inputs (G, Q), (G, Q), (Q,)."""
    return (per_question * p_asked) @ weights


def bald_dirichlet_multinomial(
    concentration_samples: np.ndarray,
    schema: Schema,
    expected_votes: float,
    question_weights: Mapping[str, float] | None = None,
    *,
    exact_outcome_limit: int = DEFAULT_EXACT_OUTCOME_LIMIT,
    mc_draws_per_sample: int = DEFAULT_MC_DRAWS_PER_SAMPLE,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """BALD for the Dirichlet head: (combined score (G,), per-question MI (G, Q)).

    score = Σ_q weight_q × P(q asked) × MI_q, MI_q = H[mean_t DM_q,t] − mean_t H[DM_q,t] in nats,
    with DM_q,t the Dirichlet-multinomial of N_q votes (see :func:`dirichlet_multinomial_entropies`
    for N_q and for when MI_q is exact). Weights as in :func:`question_weight_vector`.
    """
    weights = question_weight_vector(schema, question_weights)
    terms = dirichlet_multinomial_entropies(
        concentration_samples,
        schema,
        expected_votes,
        exact_outcome_limit=exact_outcome_limit,
        mc_draws_per_sample=mc_draws_per_sample,
        seed=seed,
    )
    mutual_information = terms.mutual_information
    return combine_questions(mutual_information, terms.p_asked, weights), mutual_information


# --- registry -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AcquisitionResult:
    scores: np.ndarray  # (G,), higher = acquire first
    per_question: np.ndarray | None  # (G, Q) per-question term (MI or entropy); None for random
    # (G,) combined BALD mutual information, for strategies that rank by MI, perhaps with noise
    # (power BALD's scores are ln MI + Gumbel noise: a random order, not a measure of information).
    mutual_information: np.ndarray | None = None


@dataclass(frozen=True)
class AcquisitionOptions:
    """Settings every registered acquisition function receives (it uses those it needs)."""

    head: str = "dirichlet"
    expected_votes: float = 40.0
    question_weights: Mapping[str, float] | None = None
    seed: int = 0
    binomial_votes: int = 40
    exact_outcome_limit: int = DEFAULT_EXACT_OUTCOME_LIMIT
    mc_draws_per_sample: int = DEFAULT_MC_DRAWS_PER_SAMPLE
    information: str = "joint"
    draws_per_sample: int = DEFAULT_DRAWS_PER_SAMPLE
    epig_targets: int = DEFAULT_EPIG_TARGETS


AcquisitionFunction = Callable[[np.ndarray, Schema | None, AcquisitionOptions], AcquisitionResult]
ACQUISITION_FUNCTIONS: dict[str, AcquisitionFunction] = {}


def register(name: str) -> Callable[[AcquisitionFunction], AcquisitionFunction]:
    """Decorator adding ``fn(predictions, schema, options) -> AcquisitionResult`` by name."""

    def add(fn: AcquisitionFunction) -> AcquisitionFunction:
        if name in ACQUISITION_FUNCTIONS:
            raise AcquisitionError(f"an acquisition function named {name!r} is already registered")
        ACQUISITION_FUNCTIONS[name] = fn
        return fn

    return add


def _dirichlet_terms(
    predictions: np.ndarray, schema: Schema | None, options: AcquisitionOptions
) -> tuple[DirichletMultinomialTerms, np.ndarray]:
    if schema is None:
        raise AcquisitionError("the Dirichlet head needs the decision-tree schema")
    weights = question_weight_vector(schema, options.question_weights)
    terms = dirichlet_multinomial_entropies(
        predictions,
        schema,
        options.expected_votes,
        exact_outcome_limit=options.exact_outcome_limit,
        mc_draws_per_sample=options.mc_draws_per_sample,
        seed=options.seed,
    )
    return terms, weights


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
        raise AcquisitionError(
            f"question_weights {dict(question_weights)} weigh questions unequally; the joint "
            "information of the votes can only count questions in (weight > 0) or out (0). "
            "Give them equal weights, or set active_learning.information: question_sum"
        )
    if not chosen:
        raise AcquisitionError(f"question_weights {dict(question_weights)} count no question")
    return [q for q, w in zip(schema.question_names, weights, strict=True) if w > 0]


def _joint_terms(predictions: np.ndarray, schema: Schema | None, options: AcquisitionOptions):
    if schema is None:
        raise AcquisitionError("the Dirichlet head needs the decision-tree schema")
    return information_terms(
        predictions,
        schema,
        int(round(options.expected_votes)),
        rng=np.random.default_rng([options.seed, 1]),
        questions=counted_questions(schema, options.question_weights),
        exact_outcome_limit=options.exact_outcome_limit,
        draws_per_sample=options.draws_per_sample,
    )


def _check_information(options: AcquisitionOptions) -> None:
    if options.information not in INFORMATION_ESTIMATORS:
        raise AcquisitionError(
            f"unknown information estimator {options.information!r}; "
            f"choose from {list(INFORMATION_ESTIMATORS)}"
        )


@register("bald")
def _bald(
    predictions: np.ndarray, schema: Schema | None, options: AcquisitionOptions
) -> AcquisitionResult:
    """Mutual information between votes and model parameters (see module docstring).

    Per-question terms (N_q = round(N · P(asked))) are returned alongside for reading; the score
    is the joint information of the whole vote vector unless ``information="question_sum"``.
    """
    if options.head == "binomial":
        mutual_information = bald_binomial(predictions, options.binomial_votes)
        return AcquisitionResult(
            mutual_information, mutual_information[:, None], mutual_information
        )
    _check_information(options)
    terms, weights = _dirichlet_terms(predictions, schema, options)
    if options.information == "question_sum":
        combined = combine_questions(terms.mutual_information, terms.p_asked, weights)
        return AcquisitionResult(combined, terms.mutual_information, combined)
    joint = _joint_terms(predictions, schema, options).mutual_information
    return AcquisitionResult(joint, terms.mutual_information, joint)


@register("power_bald")
def _power_bald(
    predictions: np.ndarray, schema: Schema | None, options: AcquisitionOptions
) -> AcquisitionResult:
    """BALD made stochastic: the top k of these scores are a draw without replacement ∝ MI.

    Top-k BALD fills a batch with near-copies of one kind of galaxy (their MI is high for the
    same reason, and labelling one would lower the others'). Power acquisition (Kirsch et al.
    2023, "Stochastic Batch Acquisition") samples the batch with probability ∝ MI instead, via
    the Gumbel-top-k trick: score = ln MI + Gumbel noise from ``numpy.random.default_rng(seed)``.
    Per-question and combined MI are returned unchanged.
    """
    bald = _bald(predictions, schema, options)
    # MI is >= 0 exactly; Monte-Carlo terms can dip just below, and ln 0 would tie those at -inf.
    log_mi = np.log(np.maximum(bald.scores, np.finfo(np.float64).tiny))
    gumbel = np.random.default_rng(options.seed).gumbel(size=log_mi.shape)
    return AcquisitionResult(log_mi + gumbel, bald.per_question, bald.scores)


@register("max_entropy")
def _max_entropy(
    predictions: np.ndarray, schema: Schema | None, options: AcquisitionOptions
) -> AcquisitionResult:
    """Entropy of the ensemble predictive, H[mean_t p_t], of the votes (joint, or summed over
    questions like BALD's ``question_sum``)."""
    if options.head == "binomial":
        predictive, _ = binomial_entropies(predictions, options.binomial_votes)
        return AcquisitionResult(predictive, predictive[:, None])
    _check_information(options)
    terms, weights = _dirichlet_terms(predictions, schema, options)
    entropy = terms.predictive_entropy
    if options.information == "question_sum":
        return AcquisitionResult(combine_questions(entropy, terms.p_asked, weights), entropy)
    return AcquisitionResult(_joint_terms(predictions, schema, options).predictive_entropy, entropy)


@register("epig")
def _epig(
    predictions: np.ndarray, schema: Schema | None, options: AcquisitionOptions
) -> AcquisitionResult:
    """Expected predictive information gain about the votes of ``epig_targets`` pool galaxies.

    The targets are a seeded random sample of the galaxies being scored (the waiting pool stands
    for the survey the model will predict); never the test set, which nothing may learn from.
    """
    n_galaxies = np.shape(predictions)[0]
    if options.epig_targets < 1:
        raise AcquisitionError(f"epig_targets must be >= 1; got {options.epig_targets}")
    rng = np.random.default_rng([options.seed, 2])
    targets = np.sort(
        rng.choice(n_galaxies, size=min(options.epig_targets, n_galaxies), replace=False)
    )
    if options.head == "binomial":
        rho = np.asarray(predictions).reshape(n_galaxies, -1)
        value = epig_binomial(
            rho,
            rho[targets],
            options.binomial_votes,
            rng,
            draws_per_sample=options.draws_per_sample,
        )
        return AcquisitionResult(value, None)
    if schema is None:
        raise AcquisitionError("the Dirichlet head needs the decision-tree schema")
    value = expected_predictive_information_gain(
        predictions,
        predictions[targets],
        schema,
        int(round(options.expected_votes)),
        rng,
        questions=counted_questions(schema, options.question_weights),
        draws_per_sample=options.draws_per_sample,
    ).epig
    return AcquisitionResult(value, None)


@register("random")
def _random(
    predictions: np.ndarray, schema: Schema | None, options: AcquisitionOptions
) -> AcquisitionResult:
    """Uniform scores in [0, 1) from ``numpy.random.default_rng(seed)``: a random order."""
    n_galaxies = np.shape(predictions)[0]
    return AcquisitionResult(np.random.default_rng(options.seed).random(n_galaxies), None)


def acquire_scores(
    name: str,
    predictions: np.ndarray,
    schema: Schema | None = None,
    *,
    head: str = "dirichlet",
    expected_votes: float = 40,
    question_weights: Mapping[str, float] | None = None,
    seed: int = 0,
    binomial_votes: int = 40,
    exact_outcome_limit: int = DEFAULT_EXACT_OUTCOME_LIMIT,
    mc_draws_per_sample: int = DEFAULT_MC_DRAWS_PER_SAMPLE,
    information: str = "joint",
    draws_per_sample: int = DEFAULT_DRAWS_PER_SAMPLE,
    epig_targets: int = DEFAULT_EPIG_TARGETS,
) -> AcquisitionResult:
    """Score galaxies with the acquisition function registered as ``name``.

    ``predictions``: Dirichlet head (G, A, T) concentrations in ``schema.label_cols`` order;
    binomial head (G, T) or (G, 1, T) ρ samples, scored with ``binomial_votes`` votes.
    ``information`` picks BALD's estimator for the Dirichlet head (``joint`` or
    ``question_sum``); ``draws_per_sample`` sets the joint measures' Monte-Carlo draws and
    ``epig_targets`` how many pool galaxies EPIG predicts.
    """
    if name not in ACQUISITION_FUNCTIONS:
        raise AcquisitionError(
            f"unknown acquisition function {name!r}; choose from {sorted(ACQUISITION_FUNCTIONS)}"
        )
    if head not in HEADS:
        raise AcquisitionError(f"unknown head {head!r}; choose from {list(HEADS)}")
    if head == "dirichlet" and schema is not None:
        question_weight_vector(schema, question_weights)  # fail early on a misspelt question
    options = AcquisitionOptions(
        head=head,
        expected_votes=expected_votes,
        question_weights=question_weights,
        seed=seed,
        binomial_votes=binomial_votes,
        exact_outcome_limit=exact_outcome_limit,
        mc_draws_per_sample=mc_draws_per_sample,
        information=information,
        draws_per_sample=draws_per_sample,
        epig_targets=epig_targets,
    )
    result = ACQUISITION_FUNCTIONS[name](np.asarray(predictions), schema, options)
    if np.shape(result.scores) != (np.shape(predictions)[0],):
        raise AcquisitionError(
            f"acquisition function {name!r} returned scores of shape {np.shape(result.scores)} "
            f"for {np.shape(predictions)[0]} galaxies"
        )
    return result


def top_k(ids: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` ids with the highest scores, best first; equal scores go in ascending id order.

    Deterministic whatever the input order. Fewer than ``k`` candidates returns them all.
    """
    ids = np.asarray(ids)
    scores = np.asarray(scores, dtype=np.float64)
    if ids.ndim != 1 or ids.shape != scores.shape:
        raise AcquisitionError(
            f"ids and scores must be 1-D and the same length; got {ids.shape} and {scores.shape}"
        )
    if k < 0:
        raise AcquisitionError(f"k must be >= 0; got {k}")
    if np.isnan(scores).any():
        row = int(np.flatnonzero(np.isnan(scores))[0])
        raise AcquisitionError(f"score of galaxy {ids[row]!r} (row {row}) is NaN")
    unique_ids, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise AcquisitionError(f"ids must be unique; {unique_ids[counts > 1][:5].tolist()} repeat")
    by_id = np.argsort(ids, kind="stable")
    order = by_id[np.argsort(-scores[by_id], kind="stable")]
    return ids[order[:k]]
