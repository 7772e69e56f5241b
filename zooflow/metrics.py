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
- Randomized PIT per answer (:mod:`zooflow.calibration`): the share of observed counts inside the
  central 90% of their predictive, 90% for an honest model.
- Per question: RMSE pooled over its answers, against the training set's mean fractions (the
  baseline any model must beat) and, on the mock survey, against the ceiling.
- Test negative log-likelihood of the observed votes under the mixture predictive (a proper
  score; lower is better).

The ceiling: where the true vote probabilities are known (the mock survey), every metric is
also computed for the truth itself, scored by the same rule (the truth as the prediction, the
multinomial of the true probabilities as the predictive). Vote noise keeps even the truth from a
perfect score: with 5-10 volunteers the observed fraction of a confident galaxy often differs
from its probability. The gap to the ceiling is what a better model could still gain.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from zooflow.ids import read_csv_with_ids
from zooflow.posteriors import count_pmf
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
    # A sample with no defined probability (a truth for a question never reached) adds no mass.
    pmf = np.nan_to_num(count_pmf(n, a, b, int(n.max()))).mean(axis=1)
    ks = np.arange(pmf.shape[1])
    expected = (pmf * ks).sum(axis=1)
    rows = []
    for f in fractions:
        # A window edge that falls on a count is inside, however E[k] was rounded (E[k] = 4 for
        # 8 votes at 0.5 comes out as 3.9999999999999996 from some sums).
        e = np.round(f * n) + 1e-9
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


def question_rmse(
    predicted: np.ndarray,
    target: np.ndarray,
    schema: Schema,
    answers: list[str] | None = None,
) -> dict[str, tuple[float, int]]:
    """RMSE per question pooled over its answers' (galaxy, answer) pairs: {question: (rmse, n)}.

    ``predicted`` and ``target`` are (galaxies, answers) in ``answers`` order (default: every
    label column); NaN targets are skipped.
    """
    answers = answers or schema.label_cols
    owner = [schema.answer_question_index[schema.label_cols.index(a)] for a in answers]
    out = {}
    for j, question in enumerate(schema.questions):
        cols = [c for c, q in enumerate(owner) if q == j]
        if not cols:
            continue
        rmse, _, n = _rmse_mae(predicted[:, cols], target[:, cols])
        out[question.name] = (rmse, n)
    return out


def question_table(
    votes: np.ndarray,
    predicted: np.ndarray,
    schema: Schema,
    *,
    min_votes: int,
    baseline: np.ndarray | None = None,
    truth: np.ndarray | None = None,
    answers: list[str] | None = None,
) -> pd.DataFrame:
    """Per question: model RMSE against observed (and true) fractions, the same for the training
    mean (``baseline``, one fraction per answer) and, with the truth, the ceiling RMSE of the
    truth against the observed fractions. Rows follow the tree; galaxies as in
    :func:`regression_table`."""
    answers = answers or schema.label_cols
    index = [schema.label_cols.index(a) for a in answers]
    observed = observed_fractions(votes, schema, min_votes)[:, index]
    true_target = None if truth is None else np.where(np.isfinite(observed), truth, np.nan)
    columns = {"rmse": question_rmse(predicted, observed, schema, answers)}
    if true_target is not None:
        columns["rmse_truth"] = question_rmse(predicted, true_target, schema, answers)
        columns["ceiling_rmse"] = question_rmse(truth, observed, schema, answers)
    if baseline is not None:
        constant = np.broadcast_to(np.asarray(baseline, dtype=np.float64), predicted.shape)
        columns["baseline_rmse"] = question_rmse(constant, observed, schema, answers)
        if true_target is not None:
            columns["baseline_rmse_truth"] = question_rmse(constant, true_target, schema, answers)
    rows = []
    for question, (_, n) in columns["rmse"].items():
        row = {"question": question, "n_pairs": n}
        row.update({name: values[question][0] for name, values in columns.items()})
        rows.append(row)
    table = pd.DataFrame(rows)
    if {"rmse_truth", "baseline_rmse_truth"} <= set(table.columns):
        table["rmse_truth_to_baseline"] = table["rmse_truth"] / table["baseline_rmse_truth"]
    return table


def training_mean_fractions(
    labelled_path, schema: Schema, min_votes: int, answers: list[str] | None = None
) -> np.ndarray:
    """Mean observed fraction per answer over the training set (galaxies with at least
    ``min_votes`` answers to the question): the constant prediction a model must beat."""
    labelled = read_csv_with_ids(labelled_path)
    votes = labelled[schema.label_cols].to_numpy(np.float64)
    fractions = observed_fractions(votes, schema, min_votes)
    counted = np.isfinite(fractions).sum(axis=0)
    mean = np.where(counted > 0, np.nansum(fractions, axis=0) / np.maximum(counted, 1), np.nan)
    answers = answers or schema.label_cols
    return mean[[schema.label_cols.index(a) for a in answers]]


def test_negative_log_likelihood(
    votes: np.ndarray,
    predictions: np.ndarray,
    schema: Schema,
    *,
    head: str = "dirichlet",
    answer: str | None = None,
) -> float:
    """Mean over galaxies of −ln p(observed votes) under the predictive, in nats per galaxy.

    The predictive is the mixture over dropout samples of the whole tree's Dirichlet-multinomial
    (:func:`zooflow.information.tree_log_likelihood`), or, for the binomial head, of
    Binomial(N, ρ) for ``answer`` against the rest of its question. A proper score: it rewards
    the right fractions and the right confidence together. Galaxies without votes are skipped.
    """
    from scipy.special import gammaln, logsumexp

    votes = np.asarray(votes, dtype=np.int64)
    if head == "binomial":
        i = schema.label_cols.index(answer or schema.label_cols[0])
        n = schema.question_totals(votes)[:, schema.answer_question_index[i]].astype(np.int64)
        keep = n > 0
        if not keep.any():
            return float("nan")
        k = votes[keep, i][:, None].astype(np.float64)
        nn = n[keep][:, None].astype(np.float64)
        rho = np.clip(
            predictions.reshape(len(votes), -1)[keep].astype(np.float64), 1e-12, 1 - 1e-12
        )
        log_pmf = (
            gammaln(nn + 1)
            - gammaln(k + 1)
            - gammaln(nn - k + 1)
            + k * np.log(rho)
            + (nn - k) * np.log1p(-rho)
        )
    else:
        from zooflow.information import tree_log_likelihood

        keep = votes.sum(axis=1) > 0
        if not keep.any():
            return float("nan")
        log_pmf = tree_log_likelihood(
            np.asarray(predictions, dtype=np.float64)[keep], votes[keep][:, None, :], schema
        )[:, :, 0]
    per_galaxy = logsumexp(log_pmf, axis=1) - np.log(log_pmf.shape[1])
    return float(-per_galaxy.mean())


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
    labelled_path=None,
    min_votes: int = 5,
    confident_threshold: float = 0.8,
    binomial_answer: str | None = None,
    seed: int = 0,
) -> dict:
    """Score a test set's posteriors; write the tables and a summary of the headline numbers.

    ``out`` names the paths: ``regression`` (per answer), ``questions`` (per question, with the
    training-mean baseline and the ceiling), ``coverage``, ``confident``, ``pit`` (randomized PIT
    per answer) and ``summary`` (JSON: overall RMSE/MAE, against the truth where known,
    smooth-or-featured accuracy on confident galaxies, coverage error at e = 0.2·N, PIT share in
    the central 90%; with the truth, the same for the truth (``ceiling``) and the model's
    ``gap_to_ceiling``; with the training set, the training-mean ``baseline``). ``labelled_path``
    is the run's training set; ``seed`` draws the PIT's uniforms.
    """
    import json

    from zooflow.calibration import answer_pit, pit_summary, pit_table
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
        answers = list(schema.label_cols)
        predicted = mean_vote_fractions(predictions, schema)
        coverage = dirichlet_coverage(votes, predictions, schema, min_votes=min_votes)
        confident = confident_table(votes, predicted, schema, threshold=confident_threshold)
    else:
        answer = binomial_answer or schema.label_cols[0]
        answers = [answer]
        rho = predictions.reshape(len(ids), -1).astype(np.float64)
        predicted = rho.mean(axis=1, keepdims=True)
        coverage = _binomial_coverage(votes, rho, schema, answer, min_votes)
        confident = _binomial_confident(
            votes, rho.mean(axis=1), schema, answer, confident_threshold, 0.5
        )
    columns = [schema.label_cols.index(a) for a in answers]
    answer_truth = None if truth is None else truth[:, columns]
    regression = regression_table(
        votes, predicted, schema, min_votes=min_votes, truth=answer_truth, answers=answers
    )
    baseline = (
        training_mean_fractions(labelled_path, schema, min_votes, answers)
        if labelled_path
        else None
    )
    questions = question_table(
        votes,
        predicted,
        schema,
        min_votes=min_votes,
        baseline=baseline,
        truth=answer_truth,
        answers=answers,
    )
    pit = pit_table(
        answer_pit(
            votes, predictions, schema, head=head, min_votes=min_votes, answers=answers, seed=seed
        )
    )

    temperatures = json.loads(str(attrs.get("temperatures", "") or "{}"))
    errors = coverage_error_at(coverage, 0.2)
    overall = regression.set_index("answer").loc["overall"]
    summary = {
        "n_galaxies": int(len(ids)),
        "head": head,
        "min_votes": min_votes,
        "rmse": float(overall["rmse"]),
        "mae": float(overall["mae"]),
        "rmse_truth": float(overall["rmse_truth"]) if "rmse_truth" in overall else None,
        "mae_truth": float(overall["mae_truth"]) if "mae_truth" in overall else None,
        **_smooth_accuracy(confident),
        "coverage_error_at_0.2N_mean": float(errors.mean()) if len(errors) else None,
        "coverage_error_at_0.2N": {k: float(v) for k, v in errors.items()},
        "pit_central_90": pit_summary(pit),
        "test_nll": test_negative_log_likelihood(
            votes, predictions, schema, head=head, answer=answers[0]
        ),
    }
    if head == "dirichlet" and any(t != 1.0 for t in temperatures.values()):
        # The same test counts before the run's calibration: the concentrations times τ.
        from zooflow.posteriors import apply_temperatures

        raw = apply_temperatures(predictions, schema, {q: 1.0 / t for q, t in temperatures.items()})
        summary["temperatures"] = temperatures
        summary["pit_central_90_uncalibrated"] = pit_summary(
            pit_table(answer_pit(votes, raw, schema, min_votes=min_votes, seed=seed))
        )
    if baseline is not None:
        constant = np.broadcast_to(baseline, predicted.shape)
        base = (
            regression_table(
                votes, constant, schema, min_votes=min_votes, truth=answer_truth, answers=answers
            )
            .set_index("answer")
            .loc["overall"]
        )
        summary["baseline"] = {
            "what": "the training set's mean fraction of every answer",
            "rmse": float(base["rmse"]),
            "rmse_truth": float(base["rmse_truth"]) if "rmse_truth" in base else None,
        }
    if truth is not None:
        summary["ceiling"] = _ceiling(
            votes, truth, schema, answers, min_votes, confident_threshold, head, seed
        )
        summary["gap_to_ceiling"] = {
            "rmse": summary["rmse"] - summary["ceiling"]["rmse"],
            "smooth_or_featured_confident_accuracy": _difference(
                summary["ceiling"]["smooth_or_featured_confident_accuracy"],
                summary["smooth_or_featured_confident_accuracy"],
            ),
            "pit_central_90_mean": _difference(
                summary["ceiling"]["pit_central_90_mean"], summary["pit_central_90"]["mean"]
            ),
        }
    regression.to_csv(out["regression"], index=False)
    questions.to_csv(out["questions"], index=False)
    coverage.to_csv(out["coverage"], index=False)
    confident.to_csv(out["confident"], index=False)
    pit.to_csv(out["pit"], index=False)
    write_json(out["summary"], summary)
    return summary


def _difference(a, b):
    return None if a is None or b is None else float(a) - float(b)


def _smooth_accuracy(confident: pd.DataFrame) -> dict:
    smooth = confident[confident["question"].str.startswith("smooth-or-featured")]
    accuracy = None
    if len(smooth) and "accuracy" in smooth and np.isfinite(smooth["accuracy"].iloc[0]):
        accuracy = float(smooth["accuracy"].iloc[0])
    return {
        "smooth_or_featured_confident_accuracy": accuracy,
        "smooth_or_featured_confident_galaxies": int(smooth["n_galaxies"].iloc[0])
        if len(smooth)
        else 0,
    }


def _binomial_coverage(votes, rho, schema, answer, min_votes) -> pd.DataFrame:
    i = schema.label_cols.index(answer)
    n = schema.question_totals(votes)[:, schema.answer_question_index[i]]
    keep = n >= min_votes
    coverage = coverage_table(votes[keep, i], n[keep], rho[keep])
    coverage.insert(0, "answer", answer)
    return coverage


def _ceiling(votes, truth, schema, answers, min_votes, confident_threshold, head, seed) -> dict:
    """Every headline metric with the true vote probabilities as the prediction."""
    from zooflow.calibration import answer_pit, pit_summary, pit_table

    columns = [schema.label_cols.index(a) for a in answers]
    regression = regression_table(
        votes, truth[:, columns], schema, min_votes=min_votes, answers=answers
    ).set_index("answer")
    if head == "dirichlet":
        confident = confident_table(votes, truth, schema, threshold=confident_threshold)
    else:
        confident = _binomial_confident(
            votes, truth[:, columns[0]], schema, answers[0], confident_threshold, 0.5
        )
    frames = [
        _binomial_coverage(votes, truth[:, [i]], schema, a, min_votes)
        for a, i in zip(answers, columns, strict=True)
    ]
    errors = coverage_error_at(pd.concat(frames, ignore_index=True), 0.2)
    pit = {}
    for answer, i in zip(answers, columns, strict=True):
        pit.update(
            answer_pit(
                votes,
                truth[:, [i]],
                schema,
                head="binomial",
                min_votes=min_votes,
                answers=[answer],
                seed=seed,
            )
        )
    return {
        "what": "the true vote probabilities scored by the same rules (mock survey)",
        "rmse": float(regression.loc["overall", "rmse"]),
        "mae": float(regression.loc["overall", "mae"]),
        "smooth_or_featured_confident_accuracy": _smooth_accuracy(confident)[
            "smooth_or_featured_confident_accuracy"
        ],
        "coverage_error_at_0.2N_mean": float(errors.mean()) if len(errors) else None,
        "pit_central_90_mean": pit_summary(pit_table(pit))["mean"],
        "pit_central_90_min": pit_summary(pit_table(pit))["min"],
    }
