"""Where every figure in README comes from, and a recomputation of the cheap ones.

`--check` recomputes the figures that take under 5 minutes and says which README numbers it
confirmed (the text must appear in README.md as printed); the others are listed with the command
that prints them. Without `--check`, only the list.

Run: .venv/bin/python benchmarks/readme_figures.py [--check]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

# The figures that take longer, each with the command that prints it (README names them too).
EXPENSIVE = {
    "How good the network is (both mock surveys, seeds)": (
        ".venv/bin/python benchmarks/model_quality.py --seeds 42 43"
    ),
    "Default run: EPIG against random (labels saved, both surveys)": (
        ".venv/bin/python benchmarks/default_workflow.py; "
        ".venv/bin/python benchmarks/active_learning.py --only-second"
    ),
    "Strategies compared (BALD, EPIG, power BALD, random)": (
        ".venv/bin/python benchmarks/active_learning.py --configfile config/studies/strategies.yaml"
    ),
    "W+20 reproduction (smooth, bar)": (
        ".venv/bin/python benchmarks/active_learning.py --configfile config/w20_smooth.yaml; "
        "the same with config/w20_bar.yaml"
    ),
    "W+20's bar sample: from scratch, with pretrained features, on a second survey": (
        ".venv/bin/python benchmarks/active_learning.py --configfile config/w20_bar.yaml "
        "config/studies/w20_bar_sample.yaml config/studies/five_rounds.yaml "
        "[config/studies/w20_pretrained.yaml] [config/studies/second_bar_survey.yaml]"
    ),
}


@dataclass(frozen=True)
class Figure:
    what: str
    compute: Callable[[], str]  # the text README must contain


def _small_trees() -> dict:
    from zooflow.schema import load_schema

    trees = {
        "child": "  - {name: shape, answers: [round, disk, odd]}\n"
        "  - {name: bar, answers: ['yes', 'no'], parent: shape_disk}\n",
        "two_roots": "  - {name: shape, answers: [round, disk]}\n"
        "  - {name: merging, answers: [none, minor, major]}\n",
        "chain": "  - {name: shape, answers: [round, disk]}\n"
        "  - {name: bar, answers: ['yes', 'no'], parent: shape_disk}\n"
        "  - {name: arms, answers: [none, two, many], parent: bar_no}\n",
        "siblings": "  - {name: shape, answers: [round, disk]}\n"
        "  - {name: bar, answers: ['yes', 'no'], parent: shape_disk}\n"
        "  - {name: bulge, answers: [small, big], parent: shape_disk}\n",
    }
    folder = Path(tempfile.mkdtemp(prefix="readme_trees_"))
    schemas = {}
    for name, questions in trees.items():
        (folder / f"{name}.yaml").write_text(f"name: {name}\nquestions:\n{questions}")
        schemas[name] = load_schema(folder / f"{name}.yaml")
    return schemas


def _dropout_like(rng, n_galaxies, n_answers, n_samples):
    """Samples from confident-agreeing to confident-disagreeing (as tests/test_information)."""
    fractions = rng.dirichlet(np.ones(n_answers), size=n_galaxies)
    scale = rng.uniform(1, 60, size=(n_galaxies, 1, 1))
    spread = rng.uniform(0, 2.5, size=(n_galaxies, 1, 1))
    logits = np.log(fractions)[:, :, None] + spread * rng.normal(
        size=(n_galaxies, n_answers, n_samples)
    )
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return 0.5 + scale * probs


def question_sum_against_joint() -> str:
    """How far the per-question sum is from the exact joint information on small trees."""
    from zooflow.information import expected_information_gain

    shares = []
    for schema in _small_trees().values():
        for n in (3, 5):
            alpha = _dropout_like(np.random.default_rng(n), 400, schema.n_answers, 8)
            joint = expected_information_gain(alpha, schema, n)
            summed = expected_information_gain(
                alpha, schema, n, estimator="question_sum", exact_outcome_limit=10**6
            )
            shares.append(np.mean(np.abs(summed - joint) > 0.03 * joint))
    return f"more than 3% off the joint value for {min(shares):.0%}-{max(shares):.0%} of galaxies"


FIGURES = [
    Figure(
        "per-question sum against the joint information (small trees)", question_sum_against_joint
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="recompute the cheap figures")
    args = parser.parse_args()
    readme = (REPO / "README.md").read_text()
    failed = 0
    if args.check:
        for figure in FIGURES:
            text = figure.compute()
            found = " ".join(text.split()) in " ".join(readme.split())
            failed += not found
            print(f"{'confirmed' if found else 'NOT IN README'}: {figure.what}: {text!r}")
    print("\nFigures from longer runs, with the command that prints each:")
    for what, command in EXPENSIVE.items():
        print(f"- {what}: {command}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
