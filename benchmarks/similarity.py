"""Do galaxies that look alike to the network share their true morphology?

Runs the `full` target of the default configuration (the embedded mock survey, pretraining, the
supervised run) with `representations.enabled`, in a scratch copy of the workflow, then for
every galaxy finds its 10 nearest galaxies by cosine similarity of the PCA copy
(`zooflow.representations.nearest_neighbours`, as the `similar` rule does) and prints the share
of those neighbours whose true morphology (smooth / featured / artifact, from the mock's truth
table) is the galaxy's own, overall and per class, against the base rate: the share a random
neighbour would have (sum over classes of the squared class fractions; per class, its fraction).

Goal (representations issue, part 2): overall share >= 0.85.

Run: .venv/bin/python benchmarks/similarity.py [--keep DIR] [--configfile EXTRA.yaml]
About 15 minutes on 2 cores (mostly the supervised training).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
PARTS = ("Snakefile", "rules", "scripts", "config", "envs", "zooflow", "report", "profiles")
SPLITS = ("test", "val", "initial", "pool")
GOAL = 0.85
K = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--configfile", type=Path, help="extra settings on top of the default")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="zooflow-similarity-"))
    root.mkdir(parents=True, exist_ok=True)
    for part in PARTS:
        if not (root / part).exists():
            source = REPO / part
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, root / part)
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "full"]
    command += ["--config", "representations={enabled: true}"]
    if args.configfile:
        command += ["--configfile", str(args.configfile.resolve())]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"snakemake failed:\n{result.stderr[-4000:]}")

    from zooflow.representations import nearest_neighbours

    represented = root / "results" / "full" / "representations"
    tables = [represented / f"{split}_pca.parquet" for split in SPLITS]
    ids = pd.concat(pd.read_parquet(t, columns=["id_str"]) for t in tables)["id_str"]
    truth = pd.read_parquet(root / "results" / "data" / "mock" / "truth.parquet")
    morphology = truth.set_index("id_str")["morphology"]
    neighbours = nearest_neighbours(tables, ids, k=K)
    neighbours["same"] = (
        morphology.loc[neighbours["query_id"]].to_numpy()
        == morphology.loc[neighbours["id_str"]].to_numpy()
    )
    neighbours["class"] = morphology.loc[neighbours["query_id"]].to_numpy()
    fractions = morphology.loc[ids].value_counts(normalize=True)
    share = neighbours["same"].mean()
    base = float((fractions**2).sum())
    verdict = "PASS" if share >= GOAL else "FAIL"
    print(f"{len(ids)} galaxies, {K} nearest neighbours each (cosine, PCA copy)")
    print(
        f"same true morphology: {share:.3f} against a base rate of {base:.3f} "
        f"(goal {GOAL}) {verdict}"
    )
    for name, rows in neighbours.groupby("class"):
        print(
            f"  {name:<9} ({fractions[name]:.1%} of the survey): {rows['same'].mean():.3f} of "
            "its neighbours share it"
        )
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
