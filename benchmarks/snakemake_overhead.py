"""Scheduling overhead of the workflow itself (goal: each at most 5 s).

1. `snakemake -n` planning a large study, nothing computed yet: 20 rounds x 2 strategies on a
   survey cut into 100 TFRecord shards (the issue's case; ~440 jobs with the default one prediction
   job per run).
2. A no-op rerun (`snakemake`) right after a complete run: everything is up to date.

For scale it also prints (no goal) the same plan with prediction split into 100 shard groups per run,
about 4,200 jobs: Snakemake spends ~2.5 ms per job planning, so its time grows with the job count.

Run: .venv/bin/python benchmarks/snakemake_overhead.py [--keep DIR]
The no-op measurement first runs the whole workflow on the test suite's tiny survey (a few
minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _workflow import copy_workflow

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "data" / "tiny.yaml"
GOAL_S = 5.0


def snakemake(workdir: Path, *args: str) -> float:
    """Wall seconds of one Snakemake CLI call (the median of three for dry runs)."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--workflow-profile", "none", *args]
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"snakemake {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--shards", type=int, default=100)
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="zooflow-overhead-"))
    root.mkdir(parents=True, exist_ok=True)
    big = copy_workflow(root / "big") if not (root / "big").exists() else root / "big"
    # 1500 mock galaxies; examples_per_shard sized so the four splits come to ~args.shards shards.
    per_shard = max(1, round(1500 / args.shards))
    rounds = f"active_learning: {{rounds: {args.rounds}, strategies: [bald, random]}}\n"
    plans = {}
    for groups in (1, args.shards):
        study = root / f"study_{groups}.yaml"
        study.write_text(
            rounds
            + "mock: {n_galaxies: 1500}\n"
            + f"shards: {{examples_per_shard: {per_shard}}}\n"
            + f"predict: {{shard_groups: {groups}}}\n"
        )
        runs = sorted(
            snakemake(big, "-n", "--quiet", "all", "--configfile", str(study)) for _ in range(3)
        )
        plans[groups] = runs[1]
    plan_s = plans[1]

    tiny = copy_workflow(root / "tiny") if not (root / "tiny").exists() else root / "tiny"
    full_s = snakemake(tiny, "--configfile", str(TINY))
    noop = sorted(snakemake(tiny, "--configfile", str(TINY)) for _ in range(3))
    noop_s = noop[1]

    print(f"full run of the tiny survey: {full_s:.1f} s (setup, not a goal)")
    for name, seconds in (
        (f"snakemake -n, {args.rounds} rounds x 2 strategies, {args.shards} shards", plan_s),
        ("no-op rerun after a full run", noop_s),
    ):
        verdict = "PASS" if seconds <= GOAL_S else "FAIL"
        print(
            f"{name}: {seconds:.2f} s = {seconds / GOAL_S:.2f}x the {GOAL_S:.0f} s goal {verdict}"
        )
    print(
        f"for scale: the same plan with {args.shards} prediction shard groups per run: "
        f"{plans[args.shards]:.2f} s (no goal; Snakemake's per-job planning cost)"
    )
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
