"""Building blocks of the Dirichlet-multinomial vote model, shared by every information measure.

:mod:`zooflow.bald` scores one question at a time and :mod:`zooflow.information` the whole
vote vector; both enumerate the ways N votes can split over K answers, read
ln Γ(α + n) − ln Γ(α) from tables of rising factorials, average likelihoods over dropout
samples in log space, and check the Dirichlet concentrations they are given. One copy of each
keeps the estimators consistent with each other.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

import numpy as np
from scipy.special import logsumexp

from zooflow.schema import Schema


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
