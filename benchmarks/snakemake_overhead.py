"""Scheduling overhead of the workflow itself (goal: each at most 5 s).

1. `snakemake -n` planning a large study: 20 rounds x 2 strategies x 100 prediction shard groups
   (about 8,000 jobs), nothing computed yet.
2. A no-op rerun (`snakemake`) right after a complete run: everything is up to date.

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

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "data" / "tiny.yaml"
PARTS = ("Snakefile", "rules", "scripts", "config", "envs", "zooflow", "report")
GOAL_S = 5.0


def copy_workflow(dest: Path) -> Path:
    for part in PARTS:
        src = REPO / part
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / part)
    return dest


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
    parser.add_argument("--shard-groups", type=int, default=100)
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="zooflow-overhead-"))
    root.mkdir(parents=True, exist_ok=True)
    big = copy_workflow(root / "big") if not (root / "big").exists() else root / "big"
    study = root / "study.yaml"
    study.write_text(
        f"active_learning: {{rounds: {args.rounds}, strategies: [bald, random]}}\n"
        f"predict: {{shard_groups: {args.shard_groups}}}\n"
    )
    planning = sorted(
        snakemake(big, "-n", "--quiet", "all", "--configfile", str(study)) for _ in range(3)
    )
    plan_s = planning[1]

    tiny = copy_workflow(root / "tiny") if not (root / "tiny").exists() else root / "tiny"
    full_s = snakemake(tiny, "--configfile", str(TINY))
    noop = sorted(snakemake(tiny, "--configfile", str(TINY)) for _ in range(3))
    noop_s = noop[1]

    print(f"full run of the tiny survey: {full_s:.1f} s (setup, not a goal)")
    for name, seconds in (
        (f"snakemake -n, {args.rounds} rounds x 2 strategies x {args.shard_groups} groups", plan_s),
        ("no-op rerun after a full run", noop_s),
    ):
        verdict = "PASS" if seconds <= GOAL_S else "FAIL"
        print(
            f"{name}: {seconds:.2f} s = {seconds / GOAL_S:.2f}x the {GOAL_S:.0f} s goal {verdict}"
        )
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
