"""How good and how honest the posteriors are.

- Regression: RMSE and MAE of predicted against observed vote fractions per answer (galaxies
  with at least ``min_votes`` answers to that question), and, on the mock survey, against the
  true expected fractions of the truth table.
- W+20 discrete coverage: for a maximum vote error e, the predicted probability that the vote
  count k lands in [E[k] − e, E[k] + e] against how often the observed k does. The predictive of
  k is the mixture over passes of Beta-binomial(N, α_a, Σα − α_a) (the Dirichlet-multinomial's
  marginal) or Binomial(N, ρ). Catalogues mix vote totals, so e is taken as a fraction of each
  galaxy's N; the headline is the coverage error at e = 0.2·N.
- W+22 confident galaxies: accuracy, precision, recall and F1 per question on galaxies where some
  answer's observed fraction exceeds 0.8 and the question was asked of at least half of the
  volunteers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from zooflow.schema import Schema

COVERAGE_FRACTIONS = np.round(np.linspace(0.0, 1.0, 21), 2)


def observed_fractions(votes: np.ndarray, schema: Schema, min_votes: int) -> np.ndarray:
    """Observed vote fractions, NaN where a question had fewer than ``min_votes`` answers."""
    fractions = schema.vote_fractions(votes)
    totals = schema.question_totals(votes)[:, schema.answer_question_index]
    return np.where(totals >= max(min_votes, 1), fractions, np.nan)


def _rmse_mae(predicted: np.ndarray, target: np.ndarray) -> tuple[float, float, int]:
    ok = np.isfinite(target) & np.isfinite(predicted)
    if not ok.any():
        return np.nan, np.nan, 0
    err = predicted[ok] - target[ok]
    return float(np.sqrt(np.mean(err**2))), float(np.mean(np.abs(err))), int(ok.sum())


def regression_table(
    votes: np.ndarray,
    predicted: np.ndarray,
    schema: Schema,
    *,
    min_votes: int,
    truth: np.ndarray | None = None,
    answers: list[str] | None = None,
) -> pd.DataFrame:
    """RMSE/MAE per answer plus an ``overall`` row over every (galaxy, answer) pair.

    ``predicted`` and ``truth`` are (galaxies, answers) fractions; the truth comparison uses the
    same galaxies as the observed one, so the two columns are comparable.
    """
    answers = answers or schema.label_cols
    index = [schema.label_cols.index(a) for a in answers]
    observed = observed_fractions(votes, schema, min_votes)[:, index]
    rows = []
    for j, answer in enumerate(answers):
        row = {"answer": answer}
        row["rmse"], row["mae"], row["n_galaxies"] = _rmse_mae(predicted[:, j], observed[:, j])
        if truth is not None:
            target = np.where(np.isfinite(observed[:, j]), truth[:, j], np.nan)
            row["rmse_truth"], row["mae_truth"], _ = _rmse_mae(predicted[:, j], target)
        rows.append(row)
    overall = {"answer": "overall"}
    overall["rmse"], overall["mae"], overall["n_galaxies"] = _rmse_mae(predicted, observed)
    if truth is not None:
        target = np.where(np.isfinite(observed), truth, np.nan)
        overall["rmse_truth"], overall["mae_truth"], _ = _rmse_mae(predicted, target)
    rows.append(overall)
    return pd.DataFrame(rows)


def vote_count_predictive(
    n: np.ndarray, a: np.ndarray, b: np.ndarray | None, k_max: int
) -> np.ndarray:
    """(G, k_max+1) mixture pmf of k over passes.

    ``a``, ``b`` are (G, T): Beta-binomial parameters (α_a, Σα − α_a); with ``b`` None, ``a``
    holds binomial ρ. Mass for k > N is zero.
    """
    k = np.arange(k_max + 1)[None, None, :]
    n3 = n[:, None, None]
    if b is None:
        pmf = stats.binom.pmf(k, n3, a[:, :, None])
    else:
        pmf = stats.betabinom.pmf(k, n3, a[:, :, None], b[:, :, None])
    return np.nan_to_num(pmf).mean(axis=1)


def coverage_table(
    k_observed: np.ndarray,
    n: np.ndarray,
    a: np.ndarray,
    b: np.ndarray | None = None,
    fractions: np.ndarray = COVERAGE_FRACTIONS,
) -> pd.DataFrame:
    """W+20 coverage: per maximum error e = f·N, mean predicted mass in E[k] ± e vs observed rate.

    Galaxies with N = 0 are skipped (nothing was observed).
    """
    keep = n > 0
    k_observed, n, a = k_observed[keep], n[keep].astype(np.int64), a[keep]
    b = None if b is None else b[keep]
    if len(n) == 0:
        return pd.DataFrame(columns=["error_fraction", "predicted", "observed", "n_galaxies"])
    pmf = vote_count_predictive(n, a, b, int(n.max()))
    ks = np.arange(pmf.shape[1])
    expected = (pmf * ks).sum(axis=1)
    rows = []
    for f in fractions:
        e = np.round(f * n)
        inside = np.abs(ks[None, :] - expected[:, None]) <= e[:, None]
        predicted = (pmf * inside).sum(axis=1)
        observed = np.abs(k_observed - expected) <= e
        rows.append(
            {
                "error_fraction": float(f),
                "predicted": float(predicted.mean()),
                "observed": float(observed.mean()),
                "n_galaxies": int(len(n)),
            }
        )
    return pd.DataFrame(rows)


def dirichlet_coverage(
    votes: np.ndarray,
    concentrations: np.ndarray,
    schema: Schema,
    *,
    min_votes: int,
    answers: list[str] | None = None,
) -> pd.DataFrame:
    """Coverage curves for each answer from Dirichlet concentration samples (G, A, T)."""
    answers = answers or schema.label_cols
    totals = schema.question_totals(votes)
    frames = []
    for answer in answers:
        i = schema.label_cols.index(answer)
        q = schema.questions[schema.answer_question_index[i]]
        n = totals[:, schema.answer_question_index[i]]
        keep = n >= max(min_votes, 1)
        alpha = concentrations[keep][:, i, :].astype(np.float64)
        alpha_total = concentrations[keep][:, q.indices, :].astype(np.float64).sum(axis=1)
        table = coverage_table(votes[keep, i], n[keep], alpha, alpha_total - alpha)
        table.insert(0, "answer", answer)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def coverage_error_at(table: pd.DataFrame, fraction: float = 0.2) -> pd.Series:
    """|predicted − observed| at e = fraction·N, per answer."""
    at = table[np.isclose(table["error_fraction"], fraction)]
    return (at["predicted"] - at["observed"]).abs().set_axis(at["answer"])


def confident_table(
    votes: np.ndarray,
    predicted: np.ndarray,
    schema: Schema,
    *,
    threshold: float = 0.8,
    min_asked_fraction: float = 0.5,
) -> pd.DataFrame:
    """W+22 table: per question, classification metrics on confidently-answered galaxies.

    Precision, recall and F1 are averaged over answers weighted by their support.
    """
    fractions = schema.vote_fractions(votes)
    totals = schema.question_totals(votes)
    root_totals = totals[:, [i for i, p in enumerate(schema.parent_index) if p is None]]
    volunteers = root_totals.max(axis=1)
    rows = []
    for j, q in enumerate(schema.questions):
        block = fractions[:, q.indices]
        with np.errstate(invalid="ignore", divide="ignore"):
            asked = np.where(volunteers > 0, totals[:, j] / volunteers, 0.0)
        confident = (np.nan_to_num(block, nan=0.0).max(axis=1) > threshold) & (
            asked >= min_asked_fraction
        )
        row = {"question": q.name, "n_galaxies": int(confident.sum())}
        if confident.any():
            truth = block[confident].argmax(axis=1)
            guess = predicted[confident][:, q.indices].argmax(axis=1)
            row.update(_classification_scores(truth, guess, len(q.answers)))
        else:
            row.update(accuracy=np.nan, precision=np.nan, recall=np.nan, f1=np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def _classification_scores(truth: np.ndarray, guess: np.ndarray, n_classes: int) -> dict:
    support = np.bincount(truth, minlength=n_classes)
    tp = np.bincount(truth[truth == guess], minlength=n_classes)
    predicted_count = np.bincount(guess, minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted_count > 0, tp / predicted_count, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    weights = support / support.sum()
    return {
        "accuracy": float((truth == guess).mean()),
        "precision": float((precision * weights).sum()),
        "recall": float((recall * weights).sum()),
        "f1": float((f1 * weights).sum()),
    }


def _binomial_confident(votes, rho, schema, answer, threshold, min_asked_fraction) -> pd.DataFrame:
    """Confident-galaxy scores for one answer against the rest of its question (binomial head)."""
    i = schema.label_cols.index(answer)
    j = schema.answer_question_index[i]
    totals = schema.question_totals(votes)
    roots = [q for q, p in enumerate(schema.parent_index) if p is None]
    volunteers = totals[:, roots].max(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(totals[:, j] > 0, votes[:, i] / totals[:, j], np.nan)
        asked = np.where(volunteers > 0, totals[:, j] / volunteers, 0.0)
    confident = (np.abs(np.nan_to_num(fraction, nan=0.5) - 0.5) > threshold - 0.5) & (
        asked >= min_asked_fraction
    )
    row = {"question": answer, "n_galaxies": int(confident.sum())}
    if confident.any():
        truth = (fraction[confident] > 0.5).astype(int)
        guess = (rho[confident] > 0.5).astype(int)
        row.update(_classification_scores(truth, guess, 2))
    return pd.DataFrame([row])


def evaluate_predictions(
    predictions_path,
    schema: Schema,
    out,
    *,
    truth_path=None,
    min_votes: int = 5,
    confident_threshold: float = 0.8,
    binomial_answer: str | None = None,
) -> dict:
    """Score a test set's posteriors; write regression, coverage, confident tables and a summary.

    ``out`` names the paths: ``regression``, ``coverage``, ``confident``, ``summary`` (JSON with
    the headline numbers: overall RMSE/MAE, against the truth where known, smooth-or-featured
    accuracy on confident galaxies, and the coverage error at e = 0.2·N).
    """
    from zooflow.jsonfile import write_json
    from zooflow.posteriors import mean_vote_fractions, read_predictions

    ids, votes, predictions, attrs = read_predictions(predictions_path)
    head = str(attrs.get("head", "dirichlet"))
    truth = None
    if truth_path:
        table = pd.read_parquet(truth_path).set_index("id_str")
        missing = sorted(set(ids) - set(table.index))
        if missing:
            raise ValueError(
                f"{truth_path}: no truth for {len(missing)} galaxies, e.g. {missing[:3]}"
            )
        truth_cols = [f"{c}_true_fraction" for c in schema.label_cols]
        truth = table.loc[list(ids), truth_cols].to_numpy(dtype=np.float64)

    if head == "dirichlet":
        predicted = mean_vote_fractions(predictions, schema)
        regression = regression_table(votes, predicted, schema, min_votes=min_votes, truth=truth)
        coverage = dirichlet_coverage(votes, predictions, schema, min_votes=min_votes)
        confident = confident_table(votes, predicted, schema, threshold=confident_threshold)
    else:
        answer = binomial_answer or schema.label_cols[0]
        i = schema.label_cols.index(answer)
        rho = predictions.reshape(len(ids), -1).astype(np.float64)
        predicted = rho.mean(axis=1, keepdims=True)
        regression = regression_table(
            votes,
            predicted,
            schema,
            min_votes=min_votes,
            truth=None if truth is None else truth[:, [i]],
            answers=[answer],
        )
        n = schema.question_totals(votes)[:, schema.answer_question_index[i]]
        keep = n >= min_votes
        coverage = coverage_table(votes[keep, i], n[keep], rho[keep])
        coverage.insert(0, "answer", answer)
        confident = _binomial_confident(
            votes, rho.mean(axis=1), schema, answer, confident_threshold, 0.5
        )

    errors = coverage_error_at(coverage, 0.2)
    overall = regression.set_index("answer").loc["overall"]
    smooth = confident[confident["question"].str.startswith("smooth-or-featured")]
    summary = {
        "n_galaxies": int(len(ids)),
        "head": head,
        "min_votes": min_votes,
        "rmse": float(overall["rmse"]),
        "mae": float(overall["mae"]),
        "rmse_truth": float(overall["rmse_truth"]) if "rmse_truth" in overall else None,
        "mae_truth": float(overall["mae_truth"]) if "mae_truth" in overall else None,
        "smooth_or_featured_confident_accuracy": (
            float(smooth["accuracy"].iloc[0]) if len(smooth) and "accuracy" in smooth else None
        ),
        "smooth_or_featured_confident_galaxies": int(smooth["n_galaxies"].iloc[0])
        if len(smooth)
        else 0,
        "coverage_error_at_0.2N_mean": float(errors.mean()) if len(errors) else None,
        "coverage_error_at_0.2N": {k: float(v) for k, v in errors.items()},
    }
    regression.to_csv(out["regression"], index=False)
    coverage.to_csv(out["coverage"], index=False)
    confident.to_csv(out["confident"], index=False)
    write_json(out["summary"], summary)
    return summary
