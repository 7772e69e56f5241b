"""Are the predicted vote distributions honest? Randomized PIT, and a per-question temperature.

**Randomized probability integral transform.** For an observed count k of an answer, out of the
N volunteers asked its question, and the model's predictive F of k (the mixture over dropout
samples of Beta-binomial(N, α_a, Σα − α_a), the Dirichlet-multinomial's marginal; Binomial(N, ρ)
for the binomial head), PIT = F(k − 1) + U · P(k), U ~ Uniform(0, 1). If the predictive is the
distribution the counts really come from, PIT is exactly uniform on [0, 1] even though k is
discrete (Czado, Gneiting & Held 2009), so the share of counts inside the central 90% of their
predictives is 90% up to sampling noise: below means tails too thin (over-confident), above
too thick.

**Temperature.** Dividing every concentration of question q by τ_q keeps the mean predicted
fractions and widens (τ > 1) or narrows (τ < 1) the spread of the Dirichlet, and with it the
predictive of the counts. One τ per question, fitted by maximum likelihood of the validation
split's observed votes under the mixture predictive, is the post-hoc calibration of the
Dirichlet head (temperature scaling, Guo et al. 2017, for concentrations).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import gammaln, logsumexp

from zooflow.jsonfile import write_json
from zooflow.posteriors import apply_temperatures, mixture_count_pmf, read_predictions
from zooflow.schema import Schema

CENTRAL = 0.9
PIT_BINS = 10
# log τ is searched within ±3 (τ from 0.05 to 20): wider than any calibration worth trusting.
_LOG_TEMPERATURE_BOUND = 3.0


def randomized_pit(
    k: np.ndarray,
    n: np.ndarray,
    a: np.ndarray,
    b: np.ndarray | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """PIT = F(k − 1) + U · P(k) per galaxy under the mixture predictive of the count."""
    k = np.asarray(k, dtype=np.int64)
    if len(k) == 0:
        return np.zeros(0)
    pmf = mixture_count_pmf(n, a, b, int(np.max(n)))
    cdf_below = np.concatenate([np.zeros((len(k), 1)), np.cumsum(pmf, axis=1)], axis=1)
    rows = np.arange(len(k))
    return np.clip(cdf_below[rows, k] + rng.random(len(k)) * pmf[rows, k], 0.0, 1.0)


def answer_pit(
    votes: np.ndarray,
    predictions: np.ndarray,
    schema: Schema,
    *,
    head: str = "dirichlet",
    min_votes: int = 5,
    answers: list[str] | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """PIT values of every answer's observed counts (galaxies with at least ``min_votes`` asked).

    ``predictions``: Dirichlet concentrations (G, A, T), or binomial ρ (G, 1, T) / (G, T) for the
    one answer in ``answers``. For the truth, pass true fractions as ρ samples with T = 1.
    """
    rng = np.random.default_rng(seed)
    totals = schema.question_totals(votes)
    answers = answers or schema.label_cols
    out = {}
    for answer in answers:
        i = schema.label_cols.index(answer)
        question = schema.questions[schema.answer_question_index[i]]
        n = totals[:, schema.answer_question_index[i]]
        keep = n >= max(min_votes, 1)
        if head == "binomial":
            rho = np.asarray(predictions, dtype=np.float64).reshape(len(votes), -1)[keep]
            a, b = rho, None
        else:
            alpha = np.asarray(predictions, dtype=np.float64)[keep]
            a = alpha[:, i, :]
            b = alpha[:, question.indices, :].sum(axis=1) - a
        out[answer] = randomized_pit(votes[keep, i], n[keep], a, b, rng)
    return out


def pit_table(pit: dict[str, np.ndarray], central: float = CENTRAL) -> pd.DataFrame:
    """Per answer: how many counts, the share inside the central ``central`` of their predictive,
    and a histogram of PIT in ``PIT_BINS`` equal bins (columns ``bin_0`` …)."""
    lo, hi = (1 - central) / 2, 1 - (1 - central) / 2
    edges = np.linspace(0.0, 1.0, PIT_BINS + 1)
    rows = []
    for answer, values in pit.items():
        row = {
            "answer": answer,
            "n_counts": len(values),
            "central_share": float(np.mean((values >= lo) & (values <= hi)))
            if len(values)
            else np.nan,
        }
        counts, _ = np.histogram(values, bins=edges)
        row.update({f"bin_{j}": int(c) for j, c in enumerate(counts)})
        rows.append(row)
    return pd.DataFrame(rows)


# Answers with fewer counts than this are too few to judge one by one: the share of 30 honest
# counts inside their central 90% scatters by ±5 points.
WELL_SAMPLED_COUNTS = 100


def pit_summary(table: pd.DataFrame) -> dict:
    """Mean, pooled and worst share of counts inside the central interval; the worst also among
    answers with at least ``WELL_SAMPLED_COUNTS`` counts."""
    scored = table[table["n_counts"] > 0]
    if scored.empty:
        return {
            "mean": None,
            "pooled": None,
            "min": None,
            "min_answer": None,
            "min_well_sampled": None,
            "min_well_sampled_answer": None,
        }
    worst = scored.loc[scored["central_share"].idxmin()]
    pooled = (scored["central_share"] * scored["n_counts"]).sum() / scored["n_counts"].sum()
    many = scored[scored["n_counts"] >= WELL_SAMPLED_COUNTS]
    worst_many = many.loc[many["central_share"].idxmin()] if len(many) else None
    return {
        "mean": float(scored["central_share"].mean()),
        "pooled": float(pooled),
        "min": float(worst["central_share"]),
        "min_answer": str(worst["answer"]),
        "min_well_sampled": None if worst_many is None else float(worst_many["central_share"]),
        "min_well_sampled_answer": None if worst_many is None else str(worst_many["answer"]),
    }


# --- temperature per question ----------------------------------------------------------------------


def _question_log_likelihood(alpha: np.ndarray, counts: np.ndarray) -> float:
    """Σ_g ln mean_t DM(k_g | α_g,t): ``alpha`` (G, K, T), ``counts`` (G, K)."""
    n = counts.sum(axis=1)
    total = alpha.sum(axis=1)  # (G, T)
    log_dm = (
        (gammaln(n + 1.0) - gammaln(counts + 1.0).sum(axis=1))[:, None]
        + gammaln(total)
        - gammaln(total + n[:, None])
        + (gammaln(alpha + counts[:, :, None]) - gammaln(alpha)).sum(axis=1)
    )
    return float((logsumexp(log_dm, axis=1) - np.log(alpha.shape[2])).sum())


# Fewer validation galaxies than this answering a question leave its τ at 1: a handful of
# galaxies would push τ to whichever bound fits their few counts.
MIN_CALIBRATION_GALAXIES = 20


def fit_temperatures(
    votes: np.ndarray,
    concentrations: np.ndarray,
    schema: Schema,
    *,
    min_votes: int = 1,
    min_galaxies: int = MIN_CALIBRATION_GALAXIES,
) -> dict[str, dict[str, float]]:
    """τ_q maximising the validation likelihood of each question's votes, with its evidence.

    Returns {question: {temperature, n_galaxies, log_likelihood_before, log_likelihood_after}};
    a question answered by at least ``min_votes`` volunteers in fewer than ``min_galaxies``
    validation galaxies keeps τ = 1.
    """
    votes = np.asarray(votes, dtype=np.float64)
    alpha = np.asarray(concentrations, dtype=np.float64)
    totals = schema.question_totals(votes)
    fitted = {}
    for j, question in enumerate(schema.questions):
        keep = totals[:, j] >= max(min_votes, 1)
        counts = votes[keep][:, question.indices]
        block = alpha[keep][:, question.indices, :]
        if keep.sum() < max(min_galaxies, 1):
            fitted[question.name] = {
                "temperature": 1.0,
                "n_galaxies": int(keep.sum()),
                "log_likelihood_before": 0.0,
                "log_likelihood_after": 0.0,
            }
            continue

        def negative_log_likelihood(log_tau: float, block=block, counts=counts) -> float:
            return -_question_log_likelihood(block * np.exp(-log_tau), counts)

        best = minimize_scalar(
            negative_log_likelihood,
            bounds=(-_LOG_TEMPERATURE_BOUND, _LOG_TEMPERATURE_BOUND),
            method="bounded",
            options={"xatol": 1e-4},
        )
        before = -negative_log_likelihood(0.0)
        after = -float(best.fun)
        # Keep τ = 1 unless the fit is better: flat likelihoods should not move the model.
        temperature = float(np.exp(best.x)) if after > before else 1.0
        fitted[question.name] = {
            "temperature": temperature,
            "n_galaxies": int(keep.sum()),
            "log_likelihood_before": before,
            "log_likelihood_after": max(after, before),
        }
    return fitted


def calibrate_run(
    validation_parts: list[str | Path],
    out_path: str | Path,
    schema: Schema,
    *,
    enabled: bool = True,
    min_votes: int = 5,
    seed: int = 0,
) -> dict:
    """Fit one temperature per question on a run's validation predictions; write the JSON.

    ``validation_parts`` are the validation split's prediction files (one per shard group).
    The file records each question's τ with its evidence and the validation PIT share in the
    central 90% before and after (fitted on the same galaxies, so the test set's evaluation is
    the honest check). With ``enabled`` False, or for the binomial head, every τ is 1.
    """
    parts = [read_predictions(p) for p in validation_parts]
    votes = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, schema.n_answers))
    predictions = np.concatenate([p[2] for p in parts]) if parts else None
    head = str(parts[0][3].get("head", "dirichlet")) if parts else "dirichlet"
    if enabled and head == "dirichlet" and predictions is not None and len(votes):
        fitted = fit_temperatures(votes, predictions, schema, min_votes=min_votes)
    else:
        fitted = {
            q.name: {
                "temperature": 1.0,
                "n_galaxies": 0,
                "log_likelihood_before": 0.0,
                "log_likelihood_after": 0.0,
            }
            for q in schema.questions
        }
    record = {"enabled": bool(enabled and head == "dirichlet"), "temperatures": fitted}
    if head == "dirichlet" and predictions is not None and len(votes):
        temperatures = {q: v["temperature"] for q, v in fitted.items()}
        before = answer_pit(votes, predictions, schema, min_votes=min_votes, seed=seed)
        after = answer_pit(
            votes,
            apply_temperatures(predictions, schema, temperatures),
            schema,
            min_votes=min_votes,
            seed=seed,
        )
        record["validation_pit_central_90"] = {
            "before": pit_summary(pit_table(before)),
            "after": pit_summary(pit_table(after)),
        }
    write_json(out_path, record)
    return record
