"""Time the acquisition functions on one core.

    .venv/bin/python benchmarks/acquisition_speed.py                  # full 1 M galaxy measurement
    .venv/bin/python benchmarks/acquisition_speed.py --galaxies 100000

Target (task brief): exact binomial BALD for 1 M galaxies × T = 30 samples with N = 40 votes in
≤ 30 s on one core. Also times the Dirichlet-multinomial BALD on the decals_dr5 tree (34 answers).
"""

from __future__ import annotations

import os

# One core: BLAS / OpenMP pools must be sized before numpy is first imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from zooflow.acquisition import (  # noqa: E402
    DEFAULT_EXACT_OUTCOME_LIMIT,
    bald_binomial,
    dirichlet_multinomial_entropies,
)
from zooflow.schema import load_schema  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--galaxies", type=int, default=BINOMIAL_TARGET_GALAXIES)
    parser.add_argument("--samples", type=int, default=30, help="MC-dropout samples T")
    parser.add_argument("--votes", type=int, default=40, help="binomial N and expected votes")
    parser.add_argument("--dm-galaxies", type=int, default=10_000)
    parser.add_argument("--tree", default="decals_dr5")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

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
