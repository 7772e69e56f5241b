"""Time the acquisition functions on one core.

    .venv/bin/python benchmarks/acquisition_speed.py                  # full 1 M galaxy measurement
    .venv/bin/python benchmarks/acquisition_speed.py --galaxies 100000
    .venv/bin/python benchmarks/acquisition_speed.py --spread-only   # the pool over 100 groups

Target (task brief): exact binomial BALD for 1 M galaxies × T = 30 samples with N = 40 votes in
≤ 30 s on one core. Also times the Dirichlet-multinomial BALD on the decals_dr5 tree (34 answers).

Spread over prediction groups (real-surveys issue, part 6: a million-galaxy pool scored with the
Dirichlet BALD in 120 s of wall time on a cluster): with ``predict.shard_groups`` > 1 a round
scores each group's galaxies in its own job (``score_group``, :func:`zooflow.acquisition.score_part`)
and ``acquire`` ranks the parts together. This times one group's job as the workflow runs it
(``--group-galaxies`` galaxies, T = 30, the joint estimator, file in and out) and the ranking of
``--groups`` such parts (a million rows by default: reading the parts, the waiting list and the
catalogue, top-k, writing scores.csv and acquired.csv). The groups run side by side on a
cluster, so the wall time is one group's job plus the ranking.
"""

from __future__ import annotations

import os

# One core: BLAS / OpenMP pools must be sized before numpy is first imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from zooflow.acquisition import (  # noqa: E402
    DEFAULT_EXACT_OUTCOME_LIMIT,
    acquire,
    bald_binomial,
    dirichlet_multinomial_entropies,
    score_part,
)
from zooflow.posteriors import STRING  # noqa: E402
from zooflow.schema import load_schema  # noqa: E402

SPREAD_GOAL_SECONDS = 120.0

BINOMIAL_TARGET_SECONDS = 30.0
BINOMIAL_TARGET_GALAXIES = 1_000_000


def time_binomial(n_galaxies: int, n_samples: int, n_votes: int, seed: int) -> float:
    rho = np.random.default_rng(seed).uniform(size=(n_galaxies, n_samples))
    start = time.perf_counter()
    bald_binomial(rho, n_votes)
    return time.perf_counter() - start


def time_dirichlet(
    n_galaxies: int, n_samples: int, expected_votes: float, tree: str, seed: int, featured: bool
) -> tuple[float, list[str]]:
    """Seconds for the Dirichlet BALD terms, and the questions that used Monte Carlo.

    ``featured`` makes every galaxy a face-on disk (P(asked) near 1 down the disk branch), the
    slow case: most questions then get the full vote count.
    """
    schema = load_schema(tree)
    rng = np.random.default_rng(seed)
    concentrations = 1.0 + 100.0 * rng.beta(
        0.5, 2.0, size=(n_galaxies, schema.n_answers, n_samples)
    )
    if featured:
        disk_path = [
            ("smooth-or-featured", "featured-or-disk"),
            ("disk-edge-on", "no"),
            ("has-spiral-arms", "yes"),
        ]
        for question, answer in disk_path:
            concentrations[:, schema.label_cols.index(schema.column(question, answer)), :] = 100.0
    start = time.perf_counter()
    terms = dirichlet_multinomial_entropies(concentrations, schema, expected_votes, seed=seed)
    seconds = time.perf_counter() - start
    return seconds, [
        q for q, exact in zip(schema.question_names, terms.exact, strict=True) if not exact
    ]


def time_spread_pool(
    group_galaxies: int, groups: int, n_samples: int, expected_votes: float, tree: str, seed: int
) -> tuple[float, float]:
    """(seconds of one group's score_part, seconds of acquire ranking ``groups`` parts)."""
    schema = load_schema(tree)
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="zooflow-spread-") as folder:
        root = Path(folder)
        part = root / "pool.h5"
        with h5py.File(part, "w") as f:
            f["predictions"] = (
                1.0 + 100.0 * rng.beta(0.5, 2.0, (group_galaxies, schema.n_answers, n_samples))
            ).astype(np.float32)
            f["votes"] = np.zeros((group_galaxies, schema.n_answers), dtype=np.int64)
            ids = np.array([f"g{row:07d}" for row in range(group_galaxies)], dtype=object)
            f.create_dataset("id_str", data=ids, dtype=STRING)
            f.create_dataset("label_cols", data=np.array(schema.label_cols, object), dtype=STRING)
            f.attrs.update(head="dirichlet", passes=n_samples)
        start = time.perf_counter()
        scored = score_part(
            part,
            schema,
            strategy="bald",
            scores_out=root / "group_0.parquet",
            expected_votes=expected_votes,
            seed=seed,
        )
        group_seconds = time.perf_counter() - start
        # The other groups' parts: the same scores under other galaxies' ids.
        parts = []
        for group in range(groups):
            parts.append(root / f"part_{group}.parquet")
            scored.assign(
                id_str=[f"g{group:03d}_{row:07d}" for row in range(len(scored))]
            ).to_parquet(parts[-1], index=False)
        every_id = pd.concat([pd.read_parquet(p, columns=["id_str"]) for p in parts])
        every_id.to_csv(root / "unlabelled.csv", index=False)
        every_id.assign(file_loc="image.png").to_parquet(root / "catalogue.parquet", index=False)
        start = time.perf_counter()
        acquire(
            None,
            root / "unlabelled.csv",
            root / "catalogue.parquet",
            schema,
            strategy="bald",
            n_acquire=2000,
            scores_out=root / "scores.csv",
            acquired_out=root / "acquired.csv",
            score_parts=parts,
        )
        return group_seconds, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--galaxies", type=int, default=BINOMIAL_TARGET_GALAXIES)
    parser.add_argument("--samples", type=int, default=30, help="MC-dropout samples T")
    parser.add_argument("--votes", type=int, default=40, help="binomial N and expected votes")
    parser.add_argument("--dm-galaxies", type=int, default=10_000)
    parser.add_argument("--tree", default="decals_dr5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--groups", type=int, default=100, help="prediction groups of the pool")
    parser.add_argument("--group-galaxies", type=int, default=10_000)
    parser.add_argument("--spread-only", action="store_true", help="only the spread pool")
    args = parser.parse_args()

    group_s, ranking_s = time_spread_pool(
        args.group_galaxies, args.groups, args.samples, args.votes, args.tree, args.seed
    )
    wall = group_s + ranking_s
    print(
        f"Dirichlet BALD (joint) over {args.groups} prediction groups of {args.group_galaxies} "
        f"galaxies ({args.groups * args.group_galaxies} in all), T={args.samples}: one group's "
        f"job {group_s:.1f} s, ranking every part {ranking_s:.1f} s; wall time on a cluster "
        f"{wall:.1f} s = {wall / SPREAD_GOAL_SECONDS:.2f} x the {SPREAD_GOAL_SECONDS:.0f} s goal "
        f"{'PASS' if wall <= SPREAD_GOAL_SECONDS else 'FAIL'}",
        flush=True,
    )
    if args.spread_only:
        return

    seconds = time_binomial(args.galaxies, args.samples, args.votes, args.seed)
    # Scale to the target size so a shrunk run still reads against the 30 s budget.
    projected = seconds * BINOMIAL_TARGET_GALAXIES / args.galaxies
    print(
        f"bald_binomial: {args.galaxies} galaxies x T={args.samples}, N={args.votes}: "
        f"{seconds:.2f} s; per 1M galaxies {projected:.2f} s = "
        f"{projected / BINOMIAL_TARGET_SECONDS:.2f} x the {BINOMIAL_TARGET_SECONDS:.0f} s target"
    )
    for featured in (False, True):
        seconds, monte_carlo = time_dirichlet(
            args.dm_galaxies, args.samples, args.votes, args.tree, args.seed, featured
        )
        population = "all face-on disks" if featured else "random concentrations"
        print(
            f"per-question Dirichlet-multinomial terms ({population}): {args.dm_galaxies} galaxies x "
            f"{args.tree} x T={args.samples}, expected votes {args.votes}: {seconds:.2f} s "
            f"(Monte Carlo above {DEFAULT_EXACT_OUTCOME_LIMIT} outcomes for: "
            f"{', '.join(monte_carlo) or 'none'})"
        )


if __name__ == "__main__":
    main()
