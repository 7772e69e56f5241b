"""Do the tests that pin README's numbers catch a broken computation?

Applies one deliberate break at a time to the library (the min_votes filter, the interval level,
the order of acquisitions, the averaging over seeds), runs the tests that should catch it, and
restores the file whatever happens. Prints CAUGHT or MISSED per break; exits 1 if any is missed.

Run: .venv/bin/python tests/check_mutations.py
"""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MUTATIONS = [
    (
        "metrics: min_votes filter ignored (observed fractions)",
        "zooflow/metrics.py",
        "return np.where(totals >= max(min_votes, 1), fractions, np.nan)",
        "return np.where(totals >= 1, fractions, np.nan)",
        ["tests/test_metrics.py"],
    ),
    (
        "metrics: coverage keeps thin questions",
        "zooflow/metrics.py",
        "keep = n >= max(min_votes, 1)",
        "keep = n >= 1",
        ["tests/test_metrics.py"],
    ),
    (
        "posteriors: 80% interval instead of 90%",
        "zooflow/posteriors.py",
        "lo_q, hi_q = (1 - interval) / 2, 1 - (1 - interval) / 2",
        "lo_q, hi_q = (1 - interval), interval",
        ["tests/test_posteriors.py"],
    ),
    (
        "acquisition: top_k takes the lowest scores",
        "zooflow/acquisition.py",
        'order = by_id[np.argsort(-scores[by_id], kind="stable")]',
        'order = by_id[np.argsort(scores[by_id], kind="stable")]',
        [
            "tests/test_rounds.py::test_acquisitions_are_the_top_of_the_scores_computed_from_the_pool"
        ],
    ),
    (
        "study: per-seed saving from the first seed only",
        "zooflow/study.py",
        'one = curves[curves["seed"] == s]',
        'one = curves[curves["seed"] == min(curves["seed"])]',
        [
            "tests/test_rounds.py::test_labels_saved_interval_resamples_seeds_and_each_seed_has_its_own_saving"
        ],
    ),
    (
        "study: seeds not averaged (last seed's curve)",
        "zooflow/study.py",
        'mean = curves.groupby(["strategy", "round"], as_index=False).mean(numeric_only=True)',
        'mean = curves[curves["seed"] == max(curves["seed"])]',
        [
            "tests/test_rounds.py::test_labels_saved_interval_resamples_seeds_and_each_seed_has_its_own_saving"
        ],
    ),
]
missed = 0
for what, path, old, new, tests in MUTATIONS:
    file = REPO / path
    original = file.read_text()
    assert original.count(old) == 1, (what, original.count(old))
    file.write_text(original.replace(old, new))
    try:
        r = subprocess.run(
            [
                str(REPO / ".venv/bin/python"),
                "-m",
                "pytest",
                "-q",
                "-x",
                "-n",  # one process: a handful of tests, stopped at the first failure
                "0",
                "-p",
                "no:cacheprovider",
                "--durations=0",
                "-m",
                "slow or not slow",
                *tests,
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
    finally:
        file.write_text(original)
    last = [line for line in r.stdout.splitlines() if line.strip()][-1]
    # Exit code 1 is a failing test; any other (no test selected, a usage error) proves nothing.
    verdict = {0: "MISSED", 1: "CAUGHT"}.get(r.returncode, f"ERROR (pytest exit {r.returncode})")
    missed += verdict != "CAUGHT"
    print(f"{verdict}: {what}: {last}", flush=True)
sys.exit(1 if missed else 0)
