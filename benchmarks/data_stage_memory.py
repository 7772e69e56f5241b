"""Does the data stage's memory stay flat as the catalogue grows? Exact peaks, 10k against 100k.

The real-surveys issue (part 6) asks for peak RSS at 100,000 galaxies within 1.2x of that at
10,000 for every data-stage job. `benchmarks/survey_scale.py` reads the peaks Snakemake samples
(every 0.5 s for a job's first 15 s, then every 30 s), which can miss a short peak; this script
measures them exactly (the process's high-water mark ``VmHWM``, and the largest worker process's
``ru_maxrss``), each job in a fresh Python process, as the workflow's scripts call the
library: ingest (``ingest_to_files``), preprocess (two worker processes), split and shards.

The catalogues: a GalSim mock survey of ``--images`` galaxies (32 px) is rendered once, and the
two catalogues repeat its rows under new, unique ids (``--sizes``), each row pointing at its
galaxy's image file. What a job holds per row (ids, paths, votes, tasks, results) is what a
survey with distinct images would hold; only ingest's image check is cheaper, as it decodes each
distinct file once. About 2 minutes on 2 cores.

    .venv/bin/python benchmarks/data_stage_memory.py [--sizes 10000 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

RSS_GOAL = 1.2
STAGES = ("ingest", "preprocess", "split", "shards")

# Run in a fresh interpreter per (stage, size): argv = stage, catalogue CSV, images, work folder.
WORKER = """
import json, resource, sys, time
from pathlib import Path
stage, csv, images, work = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
def peak_of_this_process_mib():
    # VmHWM starts afresh at exec; ru_maxrss would carry the forking parent's peak over.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
from zooflow.schema import load_schema
schema = load_schema("decals_dr5")
started = time.perf_counter()
if stage == "ingest":
    from zooflow.catalogue import ingest_to_files
    ingest_to_files(csv, images, schema, work / "catalogue.parquet", work / "rejected.csv", 0.05,
                    threads=2)
elif stage == "preprocess":
    from zooflow.preprocess import preprocess_catalogue
    preprocess_catalogue(work / "catalogue.parquet", work / "images.h5", image_size=32,
                         crop_fraction=1.0, greyscale=False, threads=2)
elif stage == "split":
    from zooflow.splits import write_splits
    write_splits(work / "catalogue.parquet", work / "splits.csv", seed=1, test_fraction=0.2,
                 val_fraction=0.1, initial_fraction=0.1)
elif stage == "shards":
    from zooflow.shards import SPLITS, write_all_shards
    write_all_shards(work / "images.h5", work / "catalogue.parquet", work / "splits.csv",
                     {s: work / "shards" / s for s in SPLITS}, schema, examples_per_shard=2048,
                     threads=2)
print(json.dumps({
    "seconds": time.perf_counter() - started,
    "rss_mib": peak_of_this_process_mib(),
    "worker_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
}))
"""


def make_catalogues(root: Path, n_images: int, sizes: tuple[int, ...]) -> dict[int, Path]:
    from zooflow.mock import MockSurveyConfig, simulate_survey
    from zooflow.schema import load_schema

    mock = root / "mock"
    if not (mock / "catalogue.csv").exists():
        print(f"rendering a {n_images}-galaxy mock survey...", flush=True)
        config = MockSurveyConfig(n_galaxies=n_images, image_size=32)
        simulate_survey(mock, load_schema("decals_dr5"), config, seed=3, threads=2)
    base = pd.read_csv(mock / "catalogue.csv", dtype={"id_str": str})
    base["file_loc"] = [str(mock / "images" / name) for name in base["file_loc"]]
    paths = {}
    for n in sizes:
        table = pd.concat([base] * -(-n // len(base)), ignore_index=True).iloc[:n].copy()
        table["id_str"] = [f"G{row:08d}" for row in range(n)]
        paths[n] = root / f"catalogue_{n}.csv"
        table.to_csv(paths[n], index=False)
    return paths


def run_stage(stage: str, catalogue: Path, images: Path, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-c", WORKER, stage, str(catalogue), str(images), str(work)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"{stage} on {catalogue} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=(10_000, 100_000))
    parser.add_argument("--images", type=int, default=2000, help="distinct galaxies rendered")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="zooflow-data-memory-"))
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    catalogues = make_catalogues(root, args.images, tuple(args.sizes))
    costs = {
        n: {
            stage: run_stage(stage, catalogues[n], root / "mock" / "images", root / f"run_{n}")
            for stage in STAGES
        }
        for n in args.sizes
    }
    small, large = args.sizes
    print(f"\nexact peak RSS, {large} against {small} galaxies (goal {RSS_GOAL}x)")
    print(f"{'job':<12}{'main process MiB':>24}{'ratio':>8}{'largest worker MiB':>24}{'ratio':>8}")
    for stage in STAGES:
        a, b = costs[small][stage], costs[large][stage]
        main_ratio = b["rss_mib"] / a["rss_mib"]
        line = f"{stage:<12}{a['rss_mib']:>11.0f} ->{b['rss_mib']:>8.0f}{main_ratio:>8.2f}x"
        worst = main_ratio
        if a["worker_rss_mib"] > 0:
            worker_ratio = b["worker_rss_mib"] / a["worker_rss_mib"]
            worst = max(worst, worker_ratio)
            line += (
                f"{a['worker_rss_mib']:>13.0f} ->{b['worker_rss_mib']:>8.0f}{worker_ratio:>8.2f}x"
            )
        else:
            line += f"{'(none)':>24}{'':>8}"
        print(f"{line}  {'PASS' if worst <= RSS_GOAL else 'FAIL'}")
    print(f"({time.perf_counter() - started:.0f} s in all)")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
