"""Survey scale: a prediction-only run at 10,000 and at 100,000 galaxies, and a GZ DECaLS-size plan.

Goals (real-surveys issue, part 6, and the representations issue, #18):
1. Per-galaxy time of the data stage (ingest, preprocess, split, shards), of prediction
   (predict, gather, release tables) and of the representations (the PCA tables and the anomaly
   ranking) at 100k within 1.1x of that at 10k.
2. Peak RSS of each of those jobs at 100k within 1.2x of that at 10k.
3. `snakemake -n` for the GZ DECaLS-size plan (config/decals.yaml: 300k galaxies, 100 prediction
   groups, 8 rounds x 3 seeds x 2 strategies) under 30 s.

Setup (no goal): the tiny test survey's `full` run trains the model (32 px); then each survey
size renders a mock survey (32 px) and runs the default target with `predict.model` set to that
run and `representations.enabled: true`: ingest, preprocess, split, shards, predict, gather, the
catalogue's release tables, the representations' tables (features and PCA copy) and the anomaly
ranking, no training. The prediction pass writes each galaxy's features itself, so the
prediction group's time includes computing and writing them (predict) and copying them into the
gathered files (gather). Times and peak RSS are Snakemake's own per-job benchmark files
(results/benchmarks/). The two sizes run one after the other in this one script, on the same
machine.

Run: .venv/bin/python benchmarks/survey_scale.py [--sizes 10000 100000] [--keep DIR] [--plan-only]
About 20 minutes on 2 cores for the default sizes (mostly the 100k survey).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from _workflow import copy_workflow

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "data" / "tiny.yaml"
DATA_STAGE = ("ingest", "preprocess", "split", "shards")
PREDICTION = ("predict", "gather", "release")
REPRESENTATIONS = ("representations", "anomalies")
GROUPS = (
    ("data stage", DATA_STAGE),
    ("prediction", PREDICTION),
    ("representations", REPRESENTATIONS),
)
TIME_GOAL, RSS_GOAL, PLAN_GOAL_S = 1.1, 1.2, 30.0


def snakemake(workdir: Path, *args: str) -> float:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"snakemake {' '.join(args)} failed:\n{result.stderr[-4000:]}")
    return time.perf_counter() - start


def stage_costs(results: Path) -> dict[str, tuple[float, float]]:
    """{stage: (seconds summed over its jobs, largest peak RSS in MiB)} from benchmark files."""
    files = {
        **{name: [results / "benchmarks" / f"{name}.tsv"] for name in DATA_STAGE},
        "predict": sorted((results / "benchmarks" / "predictions").glob("predict_*.tsv")),
        "gather": sorted((results / "benchmarks" / "predictions").glob("gather_*.tsv")),
        "release": sorted((results / "benchmarks" / "predictions").glob("release_*.tsv")),
        **{
            name: [results / "benchmarks" / "predictions" / f"{name}.tsv"]
            for name in REPRESENTATIONS
        },
    }
    costs = {}
    for stage, paths in files.items():
        tables = [pd.read_csv(p, sep="\t") for p in paths if p.exists()]
        if not tables:
            raise SystemExit(f"no benchmark file for {stage} under {results}")
        costs[stage] = (
            sum(float(t["s"].iloc[0]) for t in tables),
            max(float(t["max_rss"].iloc[0]) for t in tables),
        )
    return costs


def predict_survey(root: Path, model_run: Path, n_galaxies: int) -> dict[str, tuple[float, float]]:
    workdir = copy_workflow(root / f"survey_{n_galaxies}")
    settings = workdir / "scale.yaml"
    settings.write_text(
        f"mock: {{n_galaxies: {n_galaxies}, image_size: 32}}\n"
        f"predict: {{model: {model_run}, passes: 30}}\n"
        "shards: {examples_per_shard: 2048}\n"
        "representations: {enabled: true}\n"
        # The explorer shows a sample (explorer.max_galaxies): no part of these goals.
        "explorer: {enabled: false}\n"
    )
    seconds = snakemake(workdir, "--configfile", str(TINY), str(settings))
    print(f"  {n_galaxies} galaxies: whole run {seconds:.0f} s (rendering included)", flush=True)
    return stage_costs(workdir / "results")


def decals_plan(root: Path) -> float:
    """Median of three `snakemake -n` of config/decals.yaml at GZ DECaLS' size."""
    workdir = copy_workflow(root / "decals_plan")
    (workdir / "data" / "decals_images").mkdir(parents=True, exist_ok=True)
    # The plan does not read the catalogue: a placeholder file stands for the 300k-row table.
    (workdir / "data" / "gz_decals_volunteers_5.parquet").write_bytes(b"")
    study = workdir / "decals_size.yaml"
    study.write_text(
        "predict: {shard_groups: 100}\n"
        "active_learning: {rounds: 8, seeds: [1, 2, 3], strategies: [bald, random],"
        " acquire_per_round: 2000}\n"
    )
    runs = sorted(
        snakemake(
            workdir,
            "-n",
            "--quiet",
            "--workflow-profile",
            "none",
            "--configfile",
            "config/decals.yaml",
            str(study),
        )
        for _ in range(3)
    )
    return runs[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=(10_000, 100_000))
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--plan-only", action="store_true", help="only the DECaLS-size plan")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="zooflow-scale-"))
    root.mkdir(parents=True, exist_ok=True)

    plan_s = decals_plan(root)
    verdict = "PASS" if plan_s <= PLAN_GOAL_S else "FAIL"
    print(
        f"snakemake -n, GZ DECaLS-size plan (100 groups, 8 rounds x 3 seeds x 2 strategies): "
        f"{plan_s:.1f} s = {plan_s / PLAN_GOAL_S:.2f}x the {PLAN_GOAL_S:.0f} s goal {verdict}",
        flush=True,
    )
    if args.plan_only:
        return

    tiny = copy_workflow(root / "model")
    if not (tiny / "results" / "full" / "model.keras").exists():
        print("training the model (the tiny survey's full run)...", flush=True)
        snakemake(tiny, "full", "--configfile", str(TINY))
    small, large = args.sizes
    costs = {n: predict_survey(root, tiny / "results" / "full", n) for n in (small, large)}

    print(
        f"\nper galaxy, {large} against {small} galaxies (goals: time {TIME_GOAL}x, RSS {RSS_GOAL}x)"
    )
    print(f"{'stage':<17}{'ms/galaxy':>20}{'time ratio':>12}{'peak RSS MiB':>22}{'RSS ratio':>11}")
    for group_name, stages in GROUPS:
        sums = {n: sum(costs[n][s][0] for s in stages) / n * 1e3 for n in (small, large)}
        ratio = sums[large] / sums[small]
        print(
            f"{group_name:<17}{sums[small]:>9.3f} ->{sums[large]:>8.3f}{ratio:>11.2f}x "
            f"{'PASS' if ratio <= TIME_GOAL else 'FAIL'}"
        )
        for stage in stages:
            (t_small, rss_small), (t_large, rss_large) = costs[small][stage], costs[large][stage]
            rss_ratio = rss_large / rss_small
            print(
                f"  {stage:<15}{t_small / small * 1e3:>9.3f} ->{t_large / large * 1e3:>8.3f}"
                f"{t_large / large / (t_small / small):>11.2f}x "
                f"{rss_small:>9.0f} ->{rss_large:>8.0f}{rss_ratio:>8.2f}x "
                f"{'PASS' if rss_ratio <= RSS_GOAL else 'FAIL'}"
            )
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
