"""What the active-learning rounds add up to: learning curves, labels saved, what was acquired.

Labels saved (W+20): average each strategy's learning curve over seeds, find the baseline's
final score (the baseline, random acquisition by default, at its last round), and count how many
fewer labels the strategy needed to reach it, interpolating between rounds. Two denominators:
``labels_saved`` divides by every label the baseline had (as W+20 count), ``acquired_labels_saved``
by the labels it acquired after the start every strategy shares.

How sure: seeds are the unit of repetition (a seed fixes the initial set, the splits' use and
the training noise, shared by every strategy), so the interval resamples seeds with replacement,
strategy and baseline together, and recomputes the saving (a 90% percentile bootstrap). With
three seeds that is a rough interval, and it says so; with one there is none. A resample in which
the strategy never reaches the baseline's score counts as a loss below any saving.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zooflow.ids import read_csv_with_ids
from zooflow.jsonfile import write_json
from zooflow.schema import Schema

log = logging.getLogger(__name__)

CURVE_METRICS = {
    "rmse": "overall RMSE against observed vote fractions",
    "rmse_truth": "overall RMSE against the true vote fractions (mock survey)",
    "rmse_smooth-or-featured": "smooth-or-featured RMSE against observed fractions",
    "rmse_bar": "bar RMSE against observed fractions",
    "loss": "best validation loss",
    "test_nll": "test negative log-likelihood of the votes (nats per galaxy)",
    "coverage_error": "mean coverage error at e = 0.2 N",
}
INTERVAL = 0.9
N_BOOTSTRAP = 2000

# One active-learning round as the workflow lists it (rules/common.smk, al_rounds()): its
# ``strategy``, ``seed`` and ``round``, and the ``folder`` its results are in.
Round = Mapping[str, Any]


def metric_description(metric: str) -> str:
    if metric in CURVE_METRICS:
        return CURVE_METRICS[metric]
    return f"{metric.removeprefix('rmse_')} RMSE against observed fractions"


def _question_rmse(regression: pd.DataFrame, question: str) -> float:
    """Pooled RMSE over a question's answers: sqrt(Σ n_a rmse_a² / Σ n_a)."""
    rows = regression[regression["answer"].str.match(rf"^{question}(-[a-z0-9]+)?_")]
    rows = rows[rows["n_galaxies"] > 0]
    if rows.empty:
        return float("nan")
    return float(np.sqrt((rows["n_galaxies"] * rows["rmse"] ** 2).sum() / rows["n_galaxies"].sum()))


def collect_learning_curves(rounds: Sequence[Round]) -> pd.DataFrame:
    """One row per (strategy, seed, round) from each round's folder of results.

    Every question's RMSE (``rmse_{question}``, pooled over its answers) comes from the round's
    ``evaluation/questions.csv`` where there is one.
    """
    rows = []
    for round_ in rounds:
        run_dir = Path(round_["folder"])
        summary = json.loads((run_dir / "evaluation" / "summary.json").read_text())
        regression = pd.read_csv(run_dir / "evaluation" / "regression.csv")
        history = pd.read_csv(run_dir / "history.csv")
        n_labelled = len(pd.read_csv(run_dir / "labelled.csv", usecols=["id_str"]))
        row = {
            "strategy": round_["strategy"],
            "seed": int(round_["seed"]),
            "round": int(round_["round"]),
            "n_labelled": n_labelled,
            "rmse": summary["rmse"],
            "rmse_truth": summary.get("rmse_truth"),
            "rmse_smooth-or-featured": _question_rmse(regression, "smooth-or-featured"),
            "rmse_bar": _question_rmse(regression, "bar"),
            "loss": float(history["val_loss"].min()),
            "coverage_error": summary.get("coverage_error_at_0.2N_mean"),
            "test_nll": summary.get("test_nll"),
        }
        questions = run_dir / "evaluation" / "questions.csv"
        if questions.exists():
            for _, q in pd.read_csv(questions).iterrows():
                row[f"rmse_{q['question']}"] = q["rmse"]
        rows.append(row)
    curves = pd.DataFrame(rows).sort_values(["strategy", "seed", "round"], ignore_index=True)
    first = curves.groupby(["strategy", "seed"])["n_labelled"].transform("min")
    curves.insert(4, "n_acquired", curves["n_labelled"] - first)
    return curves


def curve_metrics(curves: pd.DataFrame) -> list[str]:
    """The lower-is-better scores a curves table holds, headline ones first."""
    extra = sorted(c for c in curves.columns if c.startswith("rmse_") and c not in CURVE_METRICS)
    return [m for m in [*CURVE_METRICS, *extra] if m in curves and curves[m].notna().any()]


def labels_needed(n_labelled: np.ndarray, metric: np.ndarray, target: float) -> float:
    """Fewest labels at which a (lower-is-better) learning curve reaches ``target``.

    Linear interpolation between rounds; NaN if the curve never gets there.
    """
    for i in range(len(metric)):
        if metric[i] <= target:
            if i == 0:
                return float(n_labelled[0])
            m0, m1 = metric[i - 1], metric[i]
            n0, n1 = n_labelled[i - 1], n_labelled[i]
            return float(n0 + (m0 - target) / (m0 - m1) * (n1 - n0))
    return float("nan")


def _saving(
    n_ours: np.ndarray, ours: np.ndarray, n_theirs: np.ndarray, theirs: np.ndarray
) -> tuple[float, float, float, bool]:
    """(labels needed, saved of all, saved of acquired, baseline improved) for mean curves."""
    target = float(theirs[-1])
    improved = bool(target < float(theirs[0]))
    needed = labels_needed(n_ours, ours, target) if improved else float("nan")
    n_baseline, n_start = float(n_theirs[-1]), float(n_theirs[0])
    if not np.isfinite(needed):
        return needed, float("nan"), float("nan"), improved
    acquired = (
        1 - (needed - n_start) / (n_baseline - n_start) if n_baseline > n_start else float("nan")
    )
    return needed, 1 - needed / n_baseline, acquired, improved


def _per_seed_table(curves: pd.DataFrame, strategy: str, metric: str) -> pd.DataFrame:
    part = curves[curves["strategy"] == strategy]
    return part.pivot_table(index="seed", columns="round", values=metric, aggfunc="mean")


def _bootstrap_interval(
    curves: pd.DataFrame, strategy: str, baseline: str, metric: str, n_bootstrap: int, seed: int
) -> dict:
    """90% percentile intervals of both savings over resampled seeds (see module docstring)."""
    ours = _per_seed_table(curves, strategy, metric)
    theirs = _per_seed_table(curves, baseline, metric)
    n_ours = _per_seed_table(curves, strategy, "n_labelled")
    n_theirs = _per_seed_table(curves, baseline, "n_labelled")
    seeds = sorted(set(ours.index) & set(theirs.index))
    empty = {"labels_saved_interval": None, "acquired_labels_saved_interval": None}
    if n_bootstrap < 1:
        return {**empty, "interval_note": "not computed"}
    if len(seeds) < 2:
        return {**empty, "interval_note": "one seed: no interval over seeds"}
    rounds = sorted(set(ours.columns) & set(theirs.columns))
    a, b = ours.loc[seeds, rounds].to_numpy(), theirs.loc[seeds, rounds].to_numpy()
    na, nb = n_ours.loc[seeds, rounds].to_numpy(), n_theirs.loc[seeds, rounds].to_numpy()
    if np.isnan(a).any() or np.isnan(b).any():
        return {**empty, "interval_note": "some seeds lack rounds: no interval"}
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(seeds), np.full(len(seeds), 1 / len(seeds)), size=n_bootstrap)
    weights = weights / len(seeds)
    all_saved, acquired_saved = [], []
    for w in weights:
        _, saved, acquired, improved = _saving(w @ na, w @ a, w @ nb, w @ b)
        if not improved:
            continue  # nothing to reach in this resample
        all_saved.append(saved if np.isfinite(saved) else -np.inf)
        acquired_saved.append(acquired if np.isfinite(acquired) else -np.inf)
    if not all_saved:
        return {**empty, "interval_note": f"{baseline} did not improve in any resample"}
    tail = 100 * (1 - INTERVAL) / 2

    def bounds(values: list[float]) -> list[float | None]:
        lo, hi = np.percentile(values, [tail, 100 - tail], method="inverted_cdf")
        return [float(v) if np.isfinite(v) else None for v in (lo, hi)]

    interval = bounds(all_saved)
    note = f"{INTERVAL:.0%} bootstrap interval over {len(seeds)} seeds"
    if len(seeds) < 5:
        note += " (few seeds: a rough interval)"
    if interval[0] is None:
        note += f"; includes resamples where {strategy} never reached {baseline}'s score"
    if interval[0] is None or interval[0] <= 0:
        note += "; the interval reaches 0 or below: no saving is established"
    return {
        "labels_saved_interval": interval,
        "acquired_labels_saved_interval": bounds(acquired_saved),
        "interval_note": note,
    }


def labels_saved(
    curves: pd.DataFrame,
    *,
    strategy: str = "bald",
    baseline: str = "random",
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """How many fewer labels ``strategy`` needs to reach ``baseline``'s final score (W+20).

    Curves are first averaged over seeds. ``labels_saved`` counts every labelled galaxy (as W+20
    plots); ``acquired_labels_saved`` counts only those asked of volunteers after the start.
    Each metric also gets its bootstrap interval over seeds and each seed's own saving.

    The comparison only means something if the baseline learned from its extra labels: when its
    final score is no better than its first round's, every strategy "reaches" it at the start.
    Then the savings are NaN and ``note`` says why.
    """
    mean = curves.groupby(["strategy", "round"], as_index=False).mean(numeric_only=True)
    out = {}
    for metric in curve_metrics(curves):
        ours = mean[mean["strategy"] == strategy].sort_values("round")
        theirs = mean[mean["strategy"] == baseline].sort_values("round")
        if ours.empty or theirs.empty or theirs[metric].isna().any() or ours[metric].isna().any():
            continue
        needed, saved, acquired, improved = _saving(
            ours["n_labelled"].to_numpy(float),
            ours[metric].to_numpy(float),
            theirs["n_labelled"].to_numpy(float),
            theirs[metric].to_numpy(float),
        )
        target = float(theirs[metric].iloc[-1])
        note = ""
        if not improved:
            note = (
                f"{baseline} did not improve on its first round ({theirs[metric].iloc[0]:.4g} -> "
                f"{target:.4g}), so there is nothing to reach sooner"
            )
        elif not np.isfinite(needed):
            note = f"{strategy} never reached {baseline}'s final {target:.4g}"
        per_seed = {}
        for s in sorted(set(curves["seed"])):
            one = curves[curves["seed"] == s]
            a = one[one["strategy"] == strategy].sort_values("round")
            b = one[one["strategy"] == baseline].sort_values("round")
            if len(a) and len(b):
                per_seed[str(s)] = _saving(
                    a["n_labelled"].to_numpy(float),
                    a[metric].to_numpy(float),
                    b["n_labelled"].to_numpy(float),
                    b[metric].to_numpy(float),
                )[1]
        out[metric] = {
            "description": metric_description(metric),
            f"{baseline}_final": target,
            f"{baseline}_labels": float(theirs["n_labelled"].iloc[-1]),
            f"{strategy}_labels_needed": needed,
            "labels_saved": saved,
            "acquired_labels_saved": acquired,
            **_bootstrap_interval(curves, strategy, baseline, metric, n_bootstrap, seed),
            "labels_saved_per_seed": per_seed,
            "seeds": int(curves["seed"].nunique()),
            # False: nothing to reach (NaN saving); True with a NaN saving: never reached it.
            "baseline_improved": improved,
            "note": note,
        }
    return out


def labels_saved_by_strategy(
    curves: pd.DataFrame, *, baseline: str = "random", n_bootstrap: int = N_BOOTSTRAP
) -> dict[str, dict[str, dict[str, float]]]:
    """:func:`labels_saved` of every strategy against ``baseline``; {} without the baseline."""
    strategies = sorted(set(curves["strategy"]))
    if baseline not in strategies:
        return {}
    return {
        strategy: labels_saved(
            curves, strategy=strategy, baseline=baseline, n_bootstrap=n_bootstrap
        )
        for strategy in strategies
        if strategy != baseline
    }


def labels_saved_by_budget(curves: pd.DataFrame, *, baseline: str = "random") -> pd.DataFrame:
    """Labels saved had the study stopped after each round, one row per strategy, metric and stop.

    The headline figure compares against the baseline's final score, so it moves with the budget:
    this sweep shows whether a saving holds across budgets or belongs to one lucky stopping point.
    A NaN saving with ``baseline_improved`` True means the strategy never reached the baseline's
    score; with False, the baseline had not improved on its first round yet.
    """
    columns = [
        "strategy",
        "metric",
        "stop_round",
        f"{baseline}_labels",
        "labels_saved",
        "acquired_labels_saved",
        "baseline_improved",
    ]
    rows = []
    for stop in range(1, int(curves["round"].max()) + 1):
        upto = curves[curves["round"] <= stop]
        by_strategy = labels_saved_by_strategy(upto, baseline=baseline, n_bootstrap=0)
        for strategy, by_metric in by_strategy.items():
            for metric, numbers in by_metric.items():
                rows.append(
                    {
                        "strategy": strategy,
                        "metric": metric,
                        "stop_round": stop,
                        f"{baseline}_labels": numbers[f"{baseline}_labels"],
                        "labels_saved": numbers["labels_saved"],
                        "acquired_labels_saved": numbers["acquired_labels_saved"],
                        "baseline_improved": numbers["baseline_improved"],
                    }
                )
    return pd.DataFrame(rows, columns=columns)


def acquisition_composition(
    rounds: Sequence[Round], catalogue_path: str | Path, schema: Schema
) -> pd.DataFrame:
    """Share of featured galaxies among each round's acquisitions and in its waiting pool.

    W+20 saw BALD prefer featured, well-resolved galaxies over smooth ones. "Featured" means
    most volunteers answered featured-or-disk to smooth-or-featured.
    """
    featured_col = schema.column("smooth-or-featured", "featured-or-disk")
    question = schema.question("smooth-or-featured")
    votes = pd.read_parquet(
        catalogue_path, columns=["id_str", *schema.label_cols[question.indices]]
    ).set_index("id_str")
    total = votes.sum(axis=1).replace(0, np.nan)
    featured = (votes[featured_col] / total) > 0.5
    rows = []
    for round_ in rounds:
        run_dir = Path(round_["folder"])
        acquired_path = run_dir / "acquired.csv"
        if not acquired_path.exists():
            continue
        acquired = read_csv_with_ids(acquired_path)["id_str"]
        waiting = read_csv_with_ids(run_dir / "unlabelled.csv")["id_str"]
        rows.append(
            {
                "strategy": round_["strategy"],
                "seed": int(round_["seed"]),
                "round": int(round_["round"]),
                "acquired_featured_fraction": float(featured.loc[acquired].mean()),
                "pool_featured_fraction": float(featured.loc[waiting].mean()),
                "n_acquired": len(acquired),
            }
        )
    return pd.DataFrame(rows)


def _percent(value) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{100 * value:.0f}%"


def summarise_rounds(
    rounds: Sequence[Round],
    catalogue_path: str | Path,
    schema: Schema,
    out,
    *,
    baseline: str = "random",
) -> dict:
    """Learning curves, labels saved (each strategy vs ``baseline``), acquisition composition,
    figures.

    ``out`` names curves, saved, by_budget, composition, figure, by_budget_figure and
    composition_figure paths. Without the baseline among the strategies, ``saved`` says so.
    """
    from zooflow.plots import plot_composition, plot_learning_curves, plot_savings_by_budget
    from zooflow.tables import labels_saved_table, write_table

    curves = collect_learning_curves(rounds)
    saved = labels_saved_by_strategy(curves, baseline=baseline)
    record: dict = saved
    if baseline not in set(curves["strategy"]):
        record = {
            "note": f"no labels saved: the baseline {baseline!r} was not run; add it to "
            "active_learning.strategies (or set active_learning.baseline to one that ran)"
        }
        log.warning(record["note"])
    by_budget = labels_saved_by_budget(curves, baseline=baseline)
    by_budget.to_csv(out["by_budget"], index=False)
    composition = acquisition_composition(rounds, catalogue_path, schema)
    curves.to_csv(out["curves"], index=False)
    composition.to_csv(out["composition"], index=False)
    write_json(out["saved"], record)  # a saving that is undefined (NaN) is written as null
    for strategy, by_metric in saved.items():
        for metric, numbers in by_metric.items():
            interval = numbers.get("labels_saved_interval")
            span = (
                f" [{_percent(interval[0])}, {_percent(interval[1])}]"
                if interval is not None
                else ""
            )
            log.info(
                "labels saved by %s on %s: %s%s (acquired labels: %s)%s",
                strategy,
                metric,
                _percent(numbers["labels_saved"]),
                span,
                _percent(numbers["acquired_labels_saved"]),
                f"; {numbers['note']}" if numbers["note"] else "",
            )
    write_table(
        curves,
        out["curves_table"],
        "Learning curves",
        "One row per strategy, seed and round: labelled galaxies and the test scores "
        "(lower is better). The same as learning_curves.csv.",
    )
    write_table(
        labels_saved_table(saved, baseline),
        out["saved_table"],
        f"Labels saved against {baseline}",
        f"How many fewer labels each strategy needed to reach {baseline}'s final score, as a "
        f"share of all of {baseline}'s labels and of those it acquired, with a 90% bootstrap "
        "interval over seeds; n/a where there is nothing to reach or it was never reached (see "
        "the note). The same as labels_saved.json."
        + ("" if saved else f" {record.get('note', '')}"),
    )
    write_table(
        by_budget,
        out["by_budget_table"],
        "Labels saved at every stopping budget",
        "The saving had the study stopped after each round. The same as "
        "labels_saved_by_budget.csv.",
    )
    plot_learning_curves(curves, saved, out["figure"])
    plot_savings_by_budget(by_budget, out["by_budget_figure"])
    plot_composition(composition, out["composition_figure"])
    return saved
