"""What a finished run found, in a few lines for the end of Snakemake's output.

The Snakefile's ``onsuccess`` prints :func:`run_summary`: the headline figures of the run's
targets (labels saved by each strategy, the supervised run's accuracy and calibration, a
campaign's next list), where the tables and figures are, and the command for the report.
Standard library only: it runs in the Snakemake process.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path

HEADLINE_METRIC = "rmse"  # the saving W+20 report: overall RMSE against observed fractions


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def percent(value) -> str:
    """0.334 -> '33%'; None or NaN -> 'n/a'."""
    return f"{100 * value:.0f}%" if _finite(value) else "n/a"


def _with_interval(value, interval) -> str:
    """'33% [21%, 40%]' when a two-number interval is given, else '33%'."""
    shown = percent(value)
    if (
        isinstance(interval, list | tuple)
        and len(interval) == 2
        and all(_finite(bound) for bound in interval)
    ):
        shown += f" [{percent(interval[0])}, {percent(interval[1])}]"
    return shown


def saving(numbers: dict) -> str:
    """One strategy's saving on one metric, as a person reads it; never 'nan%'."""
    if not _finite(numbers.get("labels_saved")):
        # A null saving: the baseline never improved (nothing to reach) or it was not reached.
        verdict = "not reached" if numbers.get("baseline_improved", True) else "n/a"
        note = numbers.get("note")
        return f"{verdict} ({note})" if note else verdict
    of_all = _with_interval(numbers["labels_saved"], numbers.get("labels_saved_interval"))
    of_acquired = _with_interval(
        numbers.get("acquired_labels_saved"), numbers.get("acquired_labels_saved_interval")
    )
    return f"{of_all} of all labels, {of_acquired} of those acquired"


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _baseline_of(numbers: dict) -> str:
    """The baseline a saving was measured against, from its `{baseline}_final` key."""
    return next((k.removesuffix("_final") for k in numbers if k.endswith("_final")), "random")


def _prediction_lines(results: Path, model: str) -> list[str]:
    """A prediction-only run (predict.model): how many galaxies, and where their tables are."""
    import pyarrow.parquet as pq

    friendly = results / "predictions" / "release" / "catalogue_friendly.parquet"
    if not friendly.exists():
        return []
    galaxies = pq.ParquetFile(friendly).metadata.num_rows
    return [
        f"  Predicted {galaxies} galaxies with {model} (nothing trained)",
        f"  Release tables: {friendly.parent}/catalogue_friendly.parquet (and .csv), "
        "catalogue_advanced.parquet; MC-dropout samples: results/predictions/{split}_predictions.h5",
    ]


def _active_learning_lines(results: Path) -> list[str]:
    saved = _read_json(results / "al" / "labels_saved.json")
    if saved is None:
        return []
    if isinstance(saved.get("note"), str):  # no baseline was run: the file says so
        return [f"  {saved['note']}"]
    lines = []
    for strategy, by_metric in saved.items():
        numbers = by_metric.get(HEADLINE_METRIC)
        if numbers is None:
            continue
        seeds = numbers.get("seeds")
        lines.append(
            f"  Labels {strategy} saved against {_baseline_of(numbers)} "
            f"({numbers.get('description', 'RMSE')}"
            f"{f', {seeds} seed(s)' if seeds else ''}): {saving(numbers)}"
        )
    if not lines:
        lines.append("  Labels saved: no strategy to compare with random")
    lines.append(
        "  Tables: results/al/learning_curves.csv, labels_saved.json, "
        "labels_saved_by_budget.csv; figures: results/al/*.png"
    )
    return lines


def _supervised_lines(results: Path) -> list[str]:
    summary = _read_json(results / "full" / "evaluation" / "summary.json")
    if summary is None:
        return []
    accuracy = summary.get("smooth_or_featured_confident_accuracy")
    confident = summary.get("smooth_or_featured_confident_galaxies", 0)
    coverage = summary.get("coverage_error_at_0.2N_mean")
    rmse = summary.get("rmse")
    figures = [
        (
            f"smooth-or-featured accuracy {100 * accuracy:.1f}% on {confident} confident galaxies"
            if _finite(accuracy)
            else "smooth-or-featured accuracy n/a (no confident galaxies)"
        ),
        (
            f"mean coverage error at e = 0.2 N {100 * coverage:.1f}%"
            if _finite(coverage)
            else "coverage n/a"
        ),
        f"RMSE {rmse:.3f}" if _finite(rmse) else "RMSE n/a",
    ]
    lines = [
        f"  Supervised run (results/full, {summary.get('n_galaxies', '?')} test galaxies): "
        + ", ".join(figures),
        "  Tables: results/full/evaluation/; figures: results/full/figures/; posteriors: "
        "results/full/{split}_posteriors.parquet",
    ]
    explorer = results / "explorer" / "index.html"
    if explorer.exists():
        lines.append(f"  Explorer: open {explorer} in a browser (a file, no server)")
    return lines


def _campaign_lines(campaign_dir: Path) -> list[str]:
    rounds = sorted(
        (int(p.parent.name.split("_")[1]), p) for p in campaign_dir.glob("round_*/to_label.csv")
    )
    if not rounds:
        return []
    latest, to_label = rounds[-1]
    n_galaxies = max(sum(1 for _ in to_label.open()) - 1, 0)
    votes = to_label.with_name("votes.csv")
    if votes.exists():
        return [f"  Campaign: round {latest} is labelled ({votes}); the study's last round is done"]
    return [
        f"  Campaign: {n_galaxies} galaxies to label in {to_label}; put the volunteers' votes in "
        f"{votes} and run the same command again"
    ]


def run_summary(
    config: dict,
    targets: Iterable[str] = (),
    configfiles: Sequence[str | Path] = (),
    workdir: str | Path = ".",
) -> str:
    """The end of a run: headline figures of its targets, where things are, how to report."""
    workdir = Path(workdir)
    results = workdir / "results"
    targets = set(targets) or {"all"}
    wants_al = "all" in targets or any(t.startswith("results/al") for t in targets)
    wants_full = "full" in targets or any(t.startswith("results/full") for t in targets)
    lines = ["", "zooflow: the run is complete."]
    if wants_al and config.get("predict", {}).get("model"):
        lines += _prediction_lines(results, config["predict"]["model"])
    elif wants_al and config["active_learning"]["oracle"] == "campaign":
        lines += _campaign_lines(workdir / config["active_learning"]["campaign_dir"])
    elif wants_al:
        lines += _active_learning_lines(results)
    if wants_full:
        lines += _supervised_lines(results)
    lines.append("  Logs of every step: logs/ (e.g. logs/full/train.log)")
    lines.append(
        f"  Report with every figure and table: {report_command(targets, configfiles, workdir)}"
    )
    return "\n".join(lines)


def report_command(
    targets: Iterable[str], configfiles: Sequence[str | Path] = (), workdir: str | Path = "."
) -> str:
    """The ``snakemake --report`` command for this run's targets and whatever else the folder
    has results for (the report holds only the targets' products): the default target when its
    products exist, ``full`` when the supervised run does."""
    results = Path(workdir) / "results"
    wanted = set(targets) or {"all"}
    if (results / "full" / "evaluation" / "summary.json").exists():
        wanted.add("full")
    if (results / "al" / "learning_curves.csv").exists():
        wanted.add("all")
    command = ["snakemake", "--report", "report.html"]
    command += [] if wanted == {"all"} else sorted(wanted)
    for path in configfiles:
        command += ["--configfile", str(path)]
    return shlex.join(command)
