"""Do galaxies that look alike to the network share their morphology, and are the odd ones odd?

Runs the `full` target of the default configuration (the embedded mock survey, pretraining, the
supervised run) with `representations.enabled`, in a scratch copy of the workflow, then for
every galaxy finds its 10 nearest galaxies by cosine similarity of the PCA copy
(`zooflow.representations.nearest_neighbours`, as the `similar` rule does) and prints the share
of those neighbours whose true morphology (smooth / featured / artifact, from the mock's truth
table) is the galaxy's own, overall and per class, against the base rate: the share a random
neighbour would have (sum over classes of the squared class fractions; per class, its fraction).

Then reads the workflow's own anomaly ranking (`results/full/representations/anomalies.csv`,
the `anomalies` rule: distance to the k-th nearest galaxy) and prints the share of artifacts,
and of mergers and any disturbed galaxy, among the top 2% most unusual, against their share
of the survey.

With ``--seeds``, the supervised run is trained once per seed (the workflow's ``seed``; the
survey and the pretrained features stay the same) and each figure is printed per seed and as
the mean and spread (sample standard deviation) over the seeds.

Goals (representations issue): similarity, overall share >= 0.85 (part 2); anomalies,
artifacts ranked high: their share in the top 2% well above their share in the survey (part 3).

Run: .venv/bin/python benchmarks/representations.py [--seeds 42 43 44] [--keep DIR]
     [--configfile EXTRA.yaml]
About 15 minutes on 2 cores for one seed (mostly the supervised training), less for each more.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
from _workflow import copy_workflow

SPLITS = ("test", "val", "initial", "pool")
GOAL = 0.85
K = 10
TOP_SHARE = 0.02


def measure(root: Path, seed: int, configfile: Path | None) -> dict:
    """Train the full run with this seed (reusing whatever else is done) and print its figures."""
    print(f"\nseed {seed}", flush=True)
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "full"]
    # train.seed: the supervised run's own seed (the global seed also draws the survey).
    command += ["--config", "representations={enabled: true}", f"train={{seed: {seed}}}"]
    if configfile:
        command += ["--configfile", str(configfile.resolve())]
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
    figures = {"seed": seed, "same morphology": share}
    for name, rows in neighbours.groupby("class"):
        figures[f"same morphology, {name}"] = rows["same"].mean()
        print(
            f"  {name:<9} ({fractions[name]:.1%} of the survey): {rows['same'].mean():.3f} of "
            "its neighbours share it"
        )
    anomalies = pd.read_csv(represented / "anomalies.csv", dtype={"id_str": str})
    top = anomalies.head(max(1, round(TOP_SHARE * len(anomalies))))
    everyone = truth.set_index("id_str").loc[anomalies["id_str"]]
    chosen = truth.set_index("id_str").loc[top["id_str"]]
    print(f"anomaly ranking: the {len(top)} most unusual galaxies ({TOP_SHARE:.0%})")
    for name, test in (
        ("artifacts", lambda t: t["morphology"] == "artifact"),
        ("mergers", lambda t: t["merger_state"] == "merger"),
        ("disturbed or merging", lambda t: t["merger_state"] != "none"),
    ):
        in_top, overall = test(chosen).mean(), test(everyone).mean()
        figures[f"{name} in the top"] = in_top
        print(
            f"  {name:<20} {in_top:.1%} of the top against {overall:.1%} of the survey "
            f"({in_top / overall if overall else float('nan'):.1f}x)"
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--configfile", type=Path, help="extra settings on top of the default")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42], help="train.seed of each run")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="zooflow-representations-"))
    root.mkdir(parents=True, exist_ok=True)
    copy_workflow(root)
    figures = [measure(root, seed, args.configfile) for seed in args.seeds]
    if len(figures) > 1:
        table = pd.DataFrame(figures).set_index("seed")
        print(f"\nover {len(table)} training seeds (mean +- sample standard deviation):")
        for column in table.columns:
            print(f"  {column:<32} {table[column].mean():.3f} +- {table[column].std():.3f}")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
