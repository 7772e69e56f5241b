"""Building blocks of the Dirichlet-multinomial vote model, shared by every information measure.

:mod:`zooflow.bald` scores one question at a time and :mod:`zooflow.information` the whole
vote vector; both enumerate the ways N votes can split over K answers, read
ln Γ(α + n) − ln Γ(α) from tables of rising factorials, average likelihoods over dropout
samples in log space, and check the predictions and vote numbers they are given (the binomial
head's ρ samples too). One copy of each keeps the estimators and their error messages consistent.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

import numpy as np
from scipy.special import logsumexp

from zooflow.schema import Schema

# Every information estimator enumerates outcomes up to this many and draws this many Monte-Carlo
# vote vectors per dropout sample beyond (active_learning.draws_per_sample in the config).
DEFAULT_EXACT_OUTCOME_LIMIT = 2000
DEFAULT_DRAWS_PER_SAMPLE = 4


@lru_cache(maxsize=256)
def vote_compositions(n_votes: int, n_answers: int) -> np.ndarray:
    """Every way ``n_votes`` volunteers can split over ``n_answers`` answers, shape (M, K).

    M = C(N + K − 1, K − 1) (stars and bars): each choice of K − 1 bar positions among N + K − 1
    slots gives one composition. Read-only, because the result is cached.
    """
    slots = n_votes + n_answers - 1
    bars = np.fromiter(
        itertools.chain.from_iterable(itertools.combinations(range(slots), n_answers - 1)),
        dtype=np.int64,
    ).reshape(-1, n_answers - 1)
    edges = np.concatenate(
        [np.full((len(bars), 1), -1), bars, np.full((len(bars), 1), slots)], axis=1
    )
    counts = np.diff(edges, axis=1) - 1
    counts.setflags(write=False)
    return counts


def n_vote_compositions(n_votes: int, n_answers: int) -> int:
    """Number of vote-count outcomes of one question: C(N + K − 1, K − 1)."""
    return math.comb(n_votes + n_answers - 1, n_answers - 1)


def log_rising_factorials(alpha: np.ndarray, n_max: int) -> np.ndarray:
    """ln Γ(α + n) − ln Γ(α) = Σ_{j<n} ln(α + j) for n = 0..n_max, appended as a last axis."""
    table = np.zeros(alpha.shape + (n_max + 1,))
    if n_max > 0:
        np.cumsum(np.log(alpha[..., None] + np.arange(n_max)), axis=-1, out=table[..., 1:])
    return table


def log_mean_exp(values: np.ndarray, axis: int) -> np.ndarray:
    """ln mean exp(values) along ``axis``, without overflow (the mixture of dropout samples)."""
    return logsumexp(values, axis=axis) - math.log(values.shape[axis])


def first_bad_row(bad: np.ndarray) -> int:
    """Index of the first galaxy (axis 0) with any flagged entry."""
    return int(np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))[0])


def check_concentrations(
    concentrations: np.ndarray, schema: Schema, error: type[Exception], what: str = ""
) -> np.ndarray:
    """Dirichlet concentrations (G, A, T) as float64, answers in ``schema.label_cols`` order.

    Raises ``error`` (each caller's own kind) naming the first problem: the shape, no dropout
    samples, or the first galaxy row and answer whose concentration is not finite and > 0.
    ``what`` (say "EPIG pool") starts the message.
    """
    prefix = f"{what}: " if what else ""
    alpha = np.asarray(concentrations, dtype=np.float64)
    if alpha.ndim != 3 or alpha.shape[1] != schema.n_answers:
        raise error(
            f"{prefix}Dirichlet concentrations must have shape (galaxies, {schema.n_answers} "
            f"answers of tree {schema.name!r}, samples); got {alpha.shape}"
        )
    if alpha.shape[2] < 1:
        raise error(f"{prefix}Dirichlet concentrations have no dropout samples (T = 0)")
    bad = ~(np.isfinite(alpha) & (alpha > 0))
    if bad.any():
        row = first_bad_row(bad)
        answer = int(np.flatnonzero(bad[row].any(axis=1))[0])
        raise error(
            f"{prefix}Dirichlet concentrations: galaxy row {row}, answer "
            f"{schema.label_cols[answer]!r} has {alpha[row, answer][bad[row, answer]][0]!r}; "
            "concentrations must be finite and > 0"
        )
    return alpha


def check_rho(rho_samples: np.ndarray, error: type[Exception], what: str = "") -> np.ndarray:
    """The binomial head's ρ samples as float64 (G, T), from (G, T) or (G, 1, T).

    Raises ``error`` naming the shape, or the first galaxy row with a value outside [0, 1].
    """
    prefix = f"{what}: " if what else ""
    rho = np.asarray(rho_samples, dtype=np.float64)
    if rho.ndim == 3 and rho.shape[1] == 1:
        rho = rho[:, 0, :]
    if rho.ndim != 2:
        raise error(
            f"{prefix}binomial ρ samples must have shape (galaxies, samples) or "
            f"(galaxies, 1, samples); got {rho.shape}"
        )
    bad = ~((rho >= 0.0) & (rho <= 1.0))  # also catches NaN
    if bad.any():
        row = first_bad_row(bad)
        raise error(
            f"{prefix}binomial ρ samples: galaxy row {row} has values outside [0, 1] "
            f"(e.g. {rho[row][bad[row]][0]!r})"
        )
    return rho


def check_vote_numbers(
    numbers: int | np.ndarray, n_galaxies: int, error: type[Exception], what: str
) -> np.ndarray:
    """Numbers of votes or volunteers as int64 (G,), from one whole number >= 0 or one per
    galaxy; raises ``error`` naming ``what`` and the first bad galaxy row."""
    values = np.asarray(numbers)
    if values.ndim == 0:
        values = np.full(n_galaxies, values)
    if values.shape != (n_galaxies,):
        raise error(
            f"{what} must be one whole number or one per galaxy ({n_galaxies},); "
            f"got shape {values.shape}"
        )
    as_float = values.astype(np.float64)
    bad = ~(np.isfinite(as_float) & (as_float >= 0) & (as_float == np.round(as_float)))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise error(f"{what}: galaxy row {row} has {values[row]!r}; expected a whole number >= 0")
    return as_float.astype(np.int64)


def constant_concentrations(votes: np.ndarray, schema: Schema) -> np.ndarray:
    """(answers,) the one Dirichlet per question that best explains every galaxy's votes.

    Per question, the maximum-likelihood α of the Dirichlet-multinomial over the galaxies whose
    volunteers were asked it (a Pólya fit: the mean sets the fractions, the spread between
    galaxies the total). It is the best prediction that ignores the image: a new head starts
    there (:mod:`zooflow.finetune`). A question nobody was asked gets α = 1 (flat); α is kept
    within [e^-5, e^7], since identical fractions everywhere would send it to infinity.
    """
    from scipy.optimize import minimize
    from scipy.special import digamma, gammaln

    votes = np.asarray(votes, dtype=np.float64)
    if votes.ndim != 2 or votes.shape[1] != schema.n_answers:
        raise ValueError(
            f"votes must be (galaxies, {schema.n_answers}) for tree {schema.name!r}, "
            f"got {votes.shape}"
        )
    alpha = np.ones(schema.n_answers)
    for question in schema.questions:
        counts = votes[:, question.indices]
        counts = counts[counts.sum(axis=1) > 0]
        if not len(counts):
            continue
        totals = counts.sum(axis=1)

        def negative_log_likelihood(log_alpha, counts=counts, totals=totals):
            a = np.exp(log_alpha)
            total = a.sum()
            value = gammaln(total) * len(counts) - gammaln(totals + total).sum()
            value += (gammaln(counts + a) - gammaln(a)).sum()
            gradient = digamma(total) * len(counts) - digamma(totals + total).sum()
            gradient = gradient + (digamma(counts + a) - digamma(a)).sum(axis=0)
            return -value, -gradient * a

        mean = counts.sum(axis=0) / totals.sum()
        start = np.log(np.clip(mean, 1e-3, None) * 2.0)
        fit = minimize(
            negative_log_likelihood,
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=[(-5.0, 7.0)] * len(start),
        )
        alpha[question.indices] = np.exp(fit.x)
    return alpha
