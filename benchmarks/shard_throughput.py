"""How close does the full image-writing path come to bare decode + resize?

Makes ``--n-images`` synthetic galaxy PNGs (an elliptical exponential profile with a random
colour on a noisy sky) and a matching catalogue in a temporary folder, then measures, with the
same number of workers (``--threads``):

(a) bare throughput: ``decode_image`` + ``prepare_image`` for every file, nothing written;
(b) the writing path: ``write_splits`` + ``preprocess_catalogue`` (HDF5) + ``write_all_shards``
    (the four splits, as the workflow's shards job).

and prints both in images/s with the ratio (b)/(a); the goal is at least 0.7. (a) and (b)
alternate, ``--repeats`` times, and the best of each is kept.

As in the workflow, where every step is its own job, shards are written by a separate Python
process: this one never imports TensorFlow, so preprocessing may fork its workers (see
``zooflow.preprocess.worker_kind``). That process times its own shard writing after importing
TensorFlow; interpreter start and import are one-off costs per job, not per image, and are left
out. CPU seconds (this process, its workers and the shard writer) are printed too: on a machine
shared with other jobs they are steadier than wall time.

``--compare-pools`` also times (a) in one process and on a thread pool, and the shard stage
with one thread, to back the choice of forked processes for decoding and threads for shards.

    .venv/bin/python benchmarks/shard_throughput.py --threads 2
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
from PIL import Image

from zooflow.preprocess import parallel_map, prepare_file, preprocess_catalogue
from zooflow.schema import load_schema
from zooflow.splits import SPLITS, write_splits

TREE = "decals_dr5"


def synthetic_galaxy(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) uint8: exp(-r / r_e) ellipse, random axis ratio, angle, colour, noise."""
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    centre_x, centre_y = rng.uniform(0.45 * size, 0.55 * size, 2)
    scale = rng.uniform(0.04, 0.15) * size
    axis_ratio, angle = rng.uniform(0.3, 1.0), rng.uniform(0.0, np.pi)
    dx, dy = xx - centre_x, yy - centre_y
    along = dx * np.cos(angle) + dy * np.sin(angle)
    across = (-dx * np.sin(angle) + dy * np.cos(angle)) / axis_ratio
    profile = np.exp(-np.hypot(along, across) / scale)
    colour = rng.uniform(0.4, 1.0, 3)
    pixels = 230.0 * profile[..., None] * colour + rng.normal(12.0, 5.0, (size, size, 3))
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def make_survey(folder: Path, n_images: int, source_size: int, seed: int) -> Path:
    """Write the PNGs and an ingest-style catalogue; return the catalogue path."""
    rng = np.random.default_rng(seed)
    schema = load_schema(TREE)
    image_folder = folder / "images"
    image_folder.mkdir()
    paths = []
    for i in range(n_images):
        path = image_folder / f"galaxy_{i:06d}.png"
        Image.fromarray(synthetic_galaxy(rng, source_size)).save(path)
        paths.append(str(path))
    votes = rng.integers(0, 40, size=(n_images, schema.n_answers))
    table = pd.DataFrame(votes, columns=schema.label_cols)
    totals = schema.question_totals(votes).astype(np.int64)
    for column, values in zip(schema.total_cols, totals.T, strict=True):
        table[column] = values
    table.insert(0, "file_loc", paths)
    table.insert(0, "id_str", [f"J{i:06d}" for i in range(n_images)])
    table["labelled"] = rng.uniform(size=n_images) > 0.05
    catalogue = folder / "catalogue.parquet"
    table.to_parquet(catalogue, index=False)
    return catalogue


def cpu_seconds() -> float:
    """CPU time used so far by this process and every process it started (psutil).

    Reaped workers count through their parent's ``children_*`` times, so the total is
    comparable before and after a pool comes and goes.
    """
    me = psutil.Process()
    total = sum(me.cpu_times()[:4])  # user, system, children_user, children_system
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:4])
        except psutil.NoSuchProcess:
            pass
    return total


def bare_decode_resize(
    paths: list[str], prepare, threads: int, pool: str = "process"
) -> tuple[float, float]:
    """(wall, CPU) seconds to decode and prepare every file, results discarded."""
    started, cpu_started = time.perf_counter(), cpu_seconds()
    if pool == "process":
        for _ in parallel_map(prepare, paths, threads):
            pass
    else:
        with ThreadPoolExecutor(threads) as executor:
            for _ in executor.map(prepare, paths):
                pass
    return time.perf_counter() - started, cpu_seconds() - cpu_started


def shard_writer_mode(folder: Path, examples_per_shard: int, threads: int) -> None:
    """Write the four splits as the workflow's shards job does; print JSON {"wall", "cpu"} s."""
    from zooflow.shards import write_all_shards  # imports TensorFlow, before the clock

    schema = load_schema(TREE)
    started, cpu_started = time.perf_counter(), time.process_time()
    write_all_shards(
        folder / "images.h5",
        folder.parent / "catalogue.parquet",
        folder / "splits.csv",
        {split: folder / "shards" / split for split in SPLITS},
        schema,
        examples_per_shard=examples_per_shard,
        threads=threads,
    )
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(json.dumps({"wall": wall, "cpu": cpu}))


def shards_in_own_process(folder: Path, args, threads: int) -> dict[str, float]:
    command = [
        sys.executable,
        __file__,
        "--write-shards-in",
        str(folder),
        "--threads",
        str(threads),
        "--examples-per-shard",
        str(args.examples_per_shard),
    ]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def writing_path(
    catalogue: Path, folder: Path, args, threads: int
) -> tuple[dict[str, float], float]:
    """Wall seconds per stage (splits, HDF5, shards) and CPU seconds of the whole path."""
    seconds = {}
    folder.mkdir(parents=True, exist_ok=True)
    cpu_started = cpu_seconds()
    started = time.perf_counter()
    write_splits(
        catalogue,
        folder / "splits.csv",
        seed=0,
        test_fraction=0.2,
        val_fraction=0.1,
        initial_fraction=0.1,
    )
    seconds["splits"] = time.perf_counter() - started
    started = time.perf_counter()
    preprocess_catalogue(
        catalogue,
        folder / "images.h5",
        image_size=args.image_size,
        crop_fraction=args.crop_fraction,
        greyscale=args.greyscale,
        threads=threads,
    )
    seconds["preprocess"] = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_started
    shard_writer = shards_in_own_process(folder, args, threads)
    seconds["shards"] = shard_writer["wall"]
    return seconds, cpu + shard_writer["cpu"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-images", type=int, default=2000)
    parser.add_argument("--source-size", type=int, default=96)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--crop-fraction", type=float, default=0.75)
    parser.add_argument("--greyscale", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--examples-per-shard", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5, help="best of this many runs")
    parser.add_argument("--compare-pools", action="store_true")
    parser.add_argument("--write-shards-in", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_shards_in is not None:
        shard_writer_mode(args.write_shards_in, args.examples_per_shard, args.threads)
        return

    prepare = functools.partial(
        prepare_file,
        image_size=args.image_size,
        crop_fraction=args.crop_fraction,
        greyscale=args.greyscale,
    )
    with tempfile.TemporaryDirectory(prefix="shard_throughput_") as tmp:
        folder = Path(tmp)
        catalogue = make_survey(folder, args.n_images, args.source_size, seed=0)
        paths = pd.read_parquet(catalogue, columns=["file_loc"])["file_loc"].tolist()
        bare_decode_resize(paths[: 4 * args.threads], prepare, args.threads)  # warm caches

        # (a) and (b) alternate so that a burst of load elsewhere hits both alike.
        bare, bare_cpu, full, full_cpu, stages = [], [], [], [], []
        for repeat in range(args.repeats):
            wall, cpu = bare_decode_resize(paths, prepare, args.threads)
            bare.append(wall)
            bare_cpu.append(cpu)
            stage_seconds, cpu = writing_path(
                catalogue, folder / f"run{repeat}", args, args.threads
            )
            full.append(sum(stage_seconds.values()))
            full_cpu.append(cpu)
            stages.append(stage_seconds)
        best = int(np.argmin(full))
        bare_rate = args.n_images / min(bare)
        full_rate = args.n_images / full[best]
        mode = "greyscale" if args.greyscale else "colour"
        print(
            f"{args.n_images} PNGs {args.source_size}px RGB -> {args.image_size}px {mode}, "
            f"crop {args.crop_fraction}, {args.threads} workers, best of {args.repeats}, "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        print(f"(a) decode+resize only      {bare_rate:8.0f} images/s")
        print(f"(b) splits+HDF5+shards      {full_rate:8.0f} images/s")
        print("    stages: " + ", ".join(f"{k} {v:.3f} s" for k, v in stages[best].items()))
        print(f"ratio (b)/(a)               {full_rate / bare_rate:8.2f}   (goal >= 0.7)")
        print(
            f"CPU per image: (a) {1e3 * min(bare_cpu) / args.n_images:.3f} ms, "
            f"(b) {1e3 * min(full_cpu) / args.n_images:.3f} ms, "
            f"ratio (a)/(b) {min(bare_cpu) / min(full_cpu):.2f}"
        )

        if args.compare_pools:
            threaded = min(
                bare_decode_resize(paths, prepare, args.threads, pool="thread")[0]
                for _ in range(args.repeats)
            )
            serial = min(bare_decode_resize(paths, prepare, 1)[0] for _ in range(args.repeats))
            print(f"decode+resize, 1 process    {args.n_images / serial:8.0f} images/s")
            print(f"decode+resize, thread pool  {args.n_images / threaded:8.0f} images/s")
            print(f"decode+resize, process pool {bare_rate:8.0f} images/s")
            run = folder / f"run{best}"
            one = min(shards_in_own_process(run, args, 1)["wall"] for _ in range(3))
            many = min(shards_in_own_process(run, args, args.threads)["wall"] for _ in range(3))
            print(f"shards only, 1 thread       {args.n_images / one:8.0f} images/s")
            print(f"shards only, {args.threads} threads      {args.n_images / many:8.0f} images/s")


if __name__ == "__main__":
    main()
