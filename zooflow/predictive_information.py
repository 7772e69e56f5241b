"""What a galaxy's votes would tell us about the votes of the galaxies we want to predict: EPIG.

**Expected predictive information gain** (EPIG: Bickford Smith et al. 2023, "Prediction-oriented
Bayesian active learning"): what a candidate's votes v would tell us about the votes v* of the
galaxies we want to predict (the targets), mean_j I(v; v*_j) with the joint
p(v, v*) = mean_t p_t(v) p_t(v*), p_t the tree's vote model of :mod:`zooflow.information` (or,
for the binomial head, Binomial(N, ρ_t)). It needs samples t that are the same network for every
galaxy, which :mod:`zooflow.predict` gives (pass t applies one dropout mask to the whole
catalogue).

Exact by enumerating every pair of outcomes when there are few; otherwise a Monte-Carlo estimate
that, like :mod:`zooflow.information`'s, averages the pointwise mutual information
ln p(v, v*) − ln p(v) − ln p(v*) over pairs drawn from the same p_t, with a standard error from
the spread of the per-draw terms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import entr, gammaln

from zooflow.dirichlet_multinomial import check_concentrations, check_rho, log_mean_exp
from zooflow.information import (
    CHUNK_ELEMENTS,
    DEFAULT_DRAWS_PER_SAMPLE,
    InformationError,
    check_n_volunteers,
    joint_outcomes,
    n_joint_outcomes,
    observed_questions,
    row_chunks,
    sample_tree_votes,
    tree_log_likelihood,
)
from zooflow.runlog import Progress
from zooflow.schema import Schema

DEFAULT_EPIG_EXACT_PAIR_LIMIT = 256


@dataclass(frozen=True)
class PredictiveInformationEstimate:
    """EPIG per candidate galaxy in nats, (G,), its standard error, and whether it was exact."""

    epig: np.ndarray
    standard_error: np.ndarray
    exact: bool


def _epig_exact(log_pool: np.ndarray, log_target: np.ndarray) -> np.ndarray:
    """mean_j I(v; v*_j) from ln p_t over every outcome: (G, T, M) and (J, T, M*)."""
    n_samples = log_pool.shape[1]
    pool, target = np.exp(log_pool), np.exp(log_target)
    pool_marginal = pool.mean(axis=1)  # (G, M)
    target_marginal = target.mean(axis=1)  # (J, M*)
    # Σ_{v,v*} p(v,v*) ln p(v,v*) − Σ_v p(v) ln p(v) − Σ_v* p(v*) ln p(v*), by mutual information's
    # expansion H(v) + H(v*) − H(v, v*).
    out = np.empty(len(pool))
    target_entropy = entr(target_marginal).sum(axis=1)  # (J,)
    for g in range(len(pool)):
        joint = np.einsum("tm,jtn->jmn", pool[g], target) / n_samples
        joint_entropy = entr(joint).sum(axis=(1, 2))
        out[g] = np.mean(entr(pool_marginal[g]).sum() + target_entropy - joint_entropy)
    return np.maximum(out, 0.0)


def _epig_monte_carlo(
    log_pool: np.ndarray, log_target: np.ndarray, draws_per_sample: int
) -> tuple[np.ndarray, np.ndarray]:
    """EPIG from paired draws: ``log_pool[g, t', d]`` = ln p_t'(v_gd) and ``log_target[j, t', d]``
    = ln p_t'(v*_jd), where v_gd and v*_jd were both drawn from sample d // S.

    Pointwise mutual information of each pair, ln mean_t' p_t'(v) p_t'(v*) − ln p̄(v) − ln p̄(v*),
    averaged over targets and draws. The joint's sum over t' is one batched matrix product of the
    max-shifted likelihoods; pairs whose shifted product underflows are redone in log space.
    """
    n_pool, n_samples, n_draws = log_pool.shape
    pool_shift = log_pool.max(axis=1, keepdims=True)
    target_shift = log_target.max(axis=1, keepdims=True)
    pool_scaled = np.exp(log_pool - pool_shift)  # (G, T, D), max 1 over t'
    target_scaled = np.exp(log_target - target_shift)  # (J, T, D)
    log_pool_mean = np.log(pool_scaled.mean(axis=1))  # (G, D), shifted ln p̄(v)
    log_target_mean = np.log(target_scaled.mean(axis=1))  # (J, D)
    epig = np.empty(n_pool)
    standard_error = np.empty(n_pool)
    target_by_draw = target_scaled.transpose(2, 1, 0)  # (D, T, J)
    chunk = max(1, CHUNK_ELEMENTS // max(n_draws * log_target.shape[0], 1))
    for start in range(0, n_pool, chunk):
        stop = min(start + chunk, n_pool)
        joint = np.matmul(pool_scaled[start:stop].transpose(2, 0, 1), target_by_draw)  # (D, g, J)
        with np.errstate(divide="ignore"):
            log_joint = np.log(joint / n_samples)
        underflow = ~np.isfinite(log_joint)
        if underflow.any():
            d, g, j = np.nonzero(underflow)
            shifted_pool = log_pool[start + g, :, d] - pool_shift[start + g, 0, d][:, None]
            shifted_target = log_target[j, :, d] - target_shift[j, 0, d][:, None]
            log_joint[d, g, j] = log_mean_exp(shifted_pool + shifted_target, axis=1)
        pmi = (
            log_joint - log_pool_mean[start:stop].T[:, :, None] - log_target_mean.T[:, None, :]
        )  # (D, g, J)
        per_draw = pmi.mean(axis=2)  # (D, g): mean over targets
        epig[start:stop] = per_draw.mean(axis=0)
        standard_error[start:stop] = (
            per_draw.std(axis=0, ddof=1) / math.sqrt(n_draws) if n_draws > 1 else 0.0
        )
    return np.maximum(epig, 0.0), standard_error


def expected_predictive_information_gain(
    concentrations_pool: np.ndarray,
    concentrations_target: np.ndarray,
    schema: Schema,
    n_volunteers: int,
    rng: np.random.Generator | int | None = None,
    *,
    questions: Sequence[str] | None = None,
    exact_pair_limit: int = DEFAULT_EPIG_EXACT_PAIR_LIMIT,
    draws_per_sample: int = DEFAULT_DRAWS_PER_SAMPLE,
) -> PredictiveInformationEstimate:
    """EPIG of each pool galaxy about the targets' votes, with its standard error.

    ``concentrations_pool`` (G, A, T) and ``concentrations_target`` (J, A, T) must come from the
    same T networks (pass t of :mod:`zooflow.predict` is one dropout mask for every galaxy). Both
    are shown to ``n_volunteers``. Exact when M·M* ≤ ``exact_pair_limit`` (M joint outcomes of
    the tree), otherwise Monte Carlo with ``draws_per_sample`` paired draws per sample.
    """
    pool = check_concentrations(concentrations_pool, schema, InformationError, "EPIG pool")
    target = check_concentrations(concentrations_target, schema, InformationError, "EPIG targets")
    if pool.shape[2] != target.shape[2]:
        raise InformationError(
            f"EPIG needs the same samples for pool and targets; got T = {pool.shape[2]} and "
            f"T = {target.shape[2]}"
        )
    if len(target) == 0:
        raise InformationError("EPIG needs at least one target galaxy")
    n = int(check_n_volunteers(n_volunteers, 1)[0])
    names = [schema.question_names[q] for q in observed_questions(schema, questions)]
    if n == 0:
        return PredictiveInformationEstimate(np.zeros(len(pool)), np.zeros(len(pool)), True)
    if n_joint_outcomes(schema, n, names) ** 2 <= exact_pair_limit:
        outcomes = joint_outcomes(schema, n, names)
        value = _epig_exact(
            tree_log_likelihood(pool, outcomes, schema),
            tree_log_likelihood(target, outcomes, schema),
        )
        return PredictiveInformationEstimate(value, np.zeros(len(pool)), True)
    rng = np.random.default_rng(rng)
    target_draws = sample_tree_votes(target, schema, n, draws_per_sample, rng, names)
    log_target = tree_log_likelihood(target, target_draws, schema)
    epig = np.empty(len(pool))
    standard_error = np.empty(len(pool))
    per_row = pool.shape[2] ** 2 * draws_per_sample * (schema.n_answers + schema.n_questions)
    progress = Progress(f"EPIG against {len(target)} target galaxies", len(pool))
    for chunk in row_chunks(np.arange(len(pool)), per_row):
        draws = sample_tree_votes(pool[chunk], schema, n, draws_per_sample, rng, names)
        log_pool = tree_log_likelihood(pool[chunk], draws, schema)
        epig[chunk], standard_error[chunk] = _epig_monte_carlo(
            log_pool, log_target, draws_per_sample
        )
        progress.advance(len(chunk))
    return PredictiveInformationEstimate(epig, standard_error, False)


def epig(
    concentrations_pool: np.ndarray,
    concentrations_target: np.ndarray,
    schema: Schema,
    n_volunteers: int,
    rng: np.random.Generator | int | None = None,
    **options,
) -> np.ndarray:
    """EPIG in nats per pool galaxy, (G,): see :func:`expected_predictive_information_gain`."""
    return expected_predictive_information_gain(
        concentrations_pool, concentrations_target, schema, n_volunteers, rng, **options
    ).epig


# --- binomial head (W+20: one answer, N votes) --------------------------------------------------


def _binomial_log_pmf(rho: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    """ln Binomial(k; n, ρ_t): ``rho`` (G, T), ``counts`` (K,) shared or (G, D) -> (G, T, K|D)."""
    tiny = np.finfo(np.float64).tiny
    clipped = np.clip(rho, tiny, 1.0 - np.finfo(np.float64).epsneg)[:, :, None]
    k = counts[None, None, :] if counts.ndim == 1 else counts[:, None, :]
    coefficient = gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0)
    return coefficient + k * np.log(clipped) + (n - k) * np.log1p(-clipped)


def epig_binomial(
    rho_pool: np.ndarray,
    rho_target: np.ndarray,
    n_votes: int,
    rng: np.random.Generator | int | None = None,
    *,
    exact_pair_limit: int = DEFAULT_EPIG_EXACT_PAIR_LIMIT,
    draws_per_sample: int = DEFAULT_DRAWS_PER_SAMPLE,
) -> np.ndarray:
    """EPIG (nats, (G,)) for the binomial head: k ~ Binomial(N, ρ_t) for pool and targets alike.

    Exact when (N + 1)² ≤ ``exact_pair_limit``, otherwise Monte Carlo as for the Dirichlet head.
    """
    pool = check_rho(rho_pool, InformationError, "EPIG pool")
    target = check_rho(rho_target, InformationError, "EPIG targets")
    if pool.shape[1] != target.shape[1] or len(target) == 0:
        raise InformationError("EPIG needs targets and the same number of samples as the pool")
    n = int(check_n_volunteers(n_votes, 1)[0])
    if (n + 1) ** 2 <= exact_pair_limit:
        ks = np.arange(n + 1)
        return _epig_exact(_binomial_log_pmf(pool, ks, n), _binomial_log_pmf(target, ks, n))
    rng = np.random.default_rng(rng)
    n_samples = pool.shape[1]
    own = np.repeat(np.arange(n_samples), draws_per_sample)
    target_draws = rng.binomial(n, target[:, own])  # (J, D)
    log_target = _binomial_log_pmf(target, target_draws, n)
    out = np.empty(len(pool))
    for chunk in row_chunks(np.arange(len(pool)), n_samples**2 * draws_per_sample):
        pool_draws = rng.binomial(n, pool[chunk][:, own])
        out[chunk], _ = _epig_monte_carlo(
            _binomial_log_pmf(pool[chunk], pool_draws, n), log_target, draws_per_sample
        )
    return out
