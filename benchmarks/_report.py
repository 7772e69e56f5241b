"""Printing an active-learning study's results, shared by the benchmarks that run one."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import date
from importlib import metadata
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]

HEADLINE_METRICS = (
    "rmse",
    "rmse_truth",
    "rmse_smooth-or-featured",
    "rmse_bar",
    "test_nll",
    "loss",
    "coverage_error",
)


def percent(value) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{100 * value:.0f}%"


def interval(numbers: dict, key: str = "labels_saved_interval") -> str:
    bounds = numbers.get(key)
    if not bounds:
        return ""
    lo, hi = ("never" if b is None else percent(b) for b in bounds)
    return f" [{lo}, {hi}]"


def saving_line(strategy: str, numbers: dict) -> str:
    """One metric's labels saved, both denominators, interval, per seed and the note."""
    if numbers["labels_saved"] is None:
        what = "not reached" if numbers["baseline_improved"] else "nothing to reach"
    else:
        what = (
            f"{percent(numbers['labels_saved'])}{interval(numbers)} of all labels, "
            f"{percent(numbers['acquired_labels_saved'])}"
            f"{interval(numbers, 'acquired_labels_saved_interval')} of acquired"
        )
    per_seed = ", ".join(
        f"{seed}: {'never' if v is None else percent(v)}"
        for seed, v in numbers.get("labels_saved_per_seed", {}).items()
    )
    line = f"  {strategy} on {numbers['description']}: {what}"
    if per_seed:
        line += f"; per seed {per_seed}"
    if numbers.get("note"):
        line += f"; {numbers['note']}"
    return line


# The vector extensions oneDNN picks its kernels by, hence what moves trained numbers.
VECTOR_FLAGS = ("avx2", "avx512f", "amx_tile")


def cpu_model() -> str:
    """The processor's name as Linux reports it, with the vector extensions it has (else what
    Python knows)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")
    flags = next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), [])
    present = [flag for flag in VECTOR_FLAGS if flag in flags]
    return f"{name or platform.machine()} ({', '.join(present) or 'no avx2'})"


def machine_line() -> str:
    """Where and on what a figure was measured: the same seeds train to different numbers on
    other CPUs (TensorFlow's oneDNN kernels) and other versions, so every study says which."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    tensorflow = "not installed"
    for distribution in ("tensorflow-cpu", "tensorflow"):  # the CPU or the GPU build
        try:
            tensorflow = f"{distribution} {metadata.version(distribution)}"
            break
        except metadata.PackageNotFoundError:
            continue
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")
    return (
        f"measured {date.today().isoformat()} at commit {commit} on {cpu_model()}, "
        f"{os.cpu_count()} logical CPUs; {tensorflow}, TF_ENABLE_ONEDNN_OPTS={onednn}"
    )


def print_study(
    results: Path, metrics: tuple[str, ...] = HEADLINE_METRICS, measured: str | None = None
) -> None:
    """Learning curves (mean over seeds), labels saved with intervals, per budget, composition.

    ``measured``: :func:`machine_line` as it read when the run copied the workflow; a study of an
    hour may end on a later commit than the library it ran, so taking the line at the end would
    name the wrong one.
    """
    print(measured or machine_line())
    al = results / "al"
    curves_path = al / "learning_curves.csv"
    if curves_path.exists():
        curves = pd.read_csv(curves_path)
        seeds = ", ".join(map(str, sorted(curves["seed"].unique())))
        columns = ["n_labelled", *[m for m in metrics if m in curves and curves[m].notna().any()]]
        mean = curves.groupby(["strategy", "round"])[columns].mean()
        print(f"learning curves, mean over seeds {seeds}:")
        print(mean.round(4).to_string())
    saved_path = al / "labels_saved.json"
    if saved_path.exists():
        saved = json.loads(saved_path.read_text())
        if "note" in saved and isinstance(saved["note"], str):
            print(saved["note"])
        else:
            print("labels saved against the baseline's final score (90% interval over seeds):")
            for strategy, by_metric in saved.items():
                for metric in metrics:
                    if metric in by_metric:
                        print(saving_line(strategy, by_metric[metric]))
    by_budget_path = al / "labels_saved_by_budget.csv"
    if by_budget_path.exists():
        by_budget = pd.read_csv(by_budget_path)
        by_budget = by_budget[by_budget["metric"].isin(metrics)]
        baseline_labels = next(c for c in by_budget.columns if c.endswith("_labels"))

        def saved_text(row: pd.Series) -> str:
            if pd.isna(row["labels_saved"]):  # "-": the baseline had not improved yet
                return "never" if row["baseline_improved"] else "-"
            return f"{percent(row['labels_saved'])} / {percent(row['acquired_labels_saved'])}"

        if not by_budget.empty:
            by_budget["saved"] = by_budget.apply(saved_text, axis=1)
            table = by_budget.set_index(["strategy", "stop_round", baseline_labels])
            print(
                "labels saved (all / acquired) had the study stopped after each round "
                "(never: not reached; -: the baseline had not improved on round 0):"
            )
            print(table.pivot(columns="metric", values="saved").to_string())
    composition_path = al / "acquisition_composition.csv"
    if composition_path.exists():
        composition = pd.read_csv(composition_path)
        if not composition.empty:
            share = composition.groupby(["strategy", "round"])[
                ["acquired_featured_fraction", "pool_featured_fraction"]
            ].mean()
            print("featured share of each round's acquisitions and of its pool (mean over seeds):")
            print(share.round(2).to_string())
