"""Throughput of the embedded mock survey: galaxies per second per core (target: 300 at 64 px).

Times ``simulate_survey`` end to end (latents, true fractions, votes, GalSim rendering, PNG
writing, catalogue and truth table) and prints the rate per worker process, its ratio to the
target, and a few numbers describing the simulated labels.

    .venv/bin/python benchmarks/mock_throughput.py                 # 2000 galaxies, 64 px, 1 core
    .venv/bin/python benchmarks/mock_throughput.py --threads 2 --n-galaxies 4000
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from zooflow.mock import MockSurveyConfig, simulate_survey
from zooflow.schema import load_schema

TARGET_PER_CORE = 300.0


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (worker processes)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def label_summary(out_dir: Path, schema_name: str) -> dict[str, float]:
    """How confident and how learnable the smooth-or-featured labels are.

    ``bayes_accuracy_confident``: among galaxies whose observed smooth or featured vote fraction
    exceeds 0.8, how often the answer with the larger *true* fraction is the majority vote, i.e.
    the accuracy a perfect model of the true fractions would reach.
    """
    schema = load_schema(schema_name)
    catalogue = pd.read_csv(out_dir / "catalogue.csv")
    truth = pd.read_parquet(out_dir / "truth.parquet")
    q = schema.question("smooth-or-featured")
    cols = schema.label_cols[q.indices]
    votes = catalogue[cols].to_numpy(dtype=float)
    observed = votes / votes.sum(axis=1, keepdims=True)
    true = truth[[f"{c}_true_fraction" for c in cols]].to_numpy()
    # Columns 0 and 1 are smooth and featured-or-disk.
    confident = observed[:, :2].max(axis=1) > 0.8
    agree = observed[:, :2].argmax(axis=1) == true[:, :2].argmax(axis=1)
    featured = true[:, 1]
    return {
        "confident_fraction": float(confident.mean()),
        "bayes_accuracy_confident": float(agree[confident].mean()),
        "true_featured_above_0.8": float((featured > 0.8).mean()),
        "true_smooth_above_0.8": float((true[:, 0] > 0.8).mean()),
        "ambiguous_0.3_to_0.7": float(((featured > 0.3) & (featured < 0.7)).mean()),
        "mean_volunteers": float(truth["n_volunteers"].mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-galaxies", type=int, default=2000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tree", default="decals_dr5")
    parser.add_argument("--out", type=Path, help="keep the survey here (default: a temp dir)")
    args = parser.parse_args()

    config = MockSurveyConfig(n_galaxies=args.n_galaxies, image_size=args.image_size)
    with tempfile.TemporaryDirectory() as scratch:
        out_dir = args.out or Path(scratch)
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        simulate_survey(
            out_dir, load_schema(args.tree), config, seed=args.seed, threads=args.threads
        )
        elapsed, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
        summary = label_summary(out_dir, args.tree)

    per_core = args.n_galaxies / elapsed / args.threads
    per_cpu_second = args.n_galaxies / cpu
    print(
        f"{args.n_galaxies} galaxies at {args.image_size} px, threads={args.threads}: "
        f"{elapsed:.2f} s wall, {cpu:.2f} s CPU (this process and its workers)"
    )
    print(f"galaxies/s per core (wall clock): {per_core:.1f}")
    print(f"ratio to the {TARGET_PER_CORE:.0f}/s target: {per_core / TARGET_PER_CORE:.2f}")
    # On a shared machine wall-clock time includes waiting for a core; CPU time does not.
    print(
        f"galaxies per CPU-second: {per_cpu_second:.1f} "
        f"(ratio {per_cpu_second / TARGET_PER_CORE:.2f})"
    )
    for key, value in summary.items():
        print(f"{key}: {np.round(value, 4)}")


if __name__ == "__main__":
    main()
