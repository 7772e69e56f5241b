"""Does prediction's memory stay flat as the catalogue grows?

Writes two synthetic catalogues as shards (``--galaxies`` N and ``--factor`` x N galaxies, 32 px
greyscale by default) and saves a freshly initialised w20_cnn, then runs
``zooflow.predict.predict_catalogue`` (T = 30 MC-dropout samples, batch 256) on each in a fresh
Python process, so the two peaks are independent. Each worker first predicts a small warm-up
catalogue (TensorFlow's runtime, the loaded model and the traced graph then sit in memory), then
records its resident set size, predicts the catalogue, and reports its peak resident set size
(``getrusage(RUSAGE_SELF).ru_maxrss``). The growth is the peak minus that RSS: what predicting
the catalogue itself costs. ``--with-summary`` also runs ``zooflow.posteriors.gather_and_summarise``
(what the workflow's gather step does next) in the same worker.

The goal: the extra galaxies of the large catalogue cost at most a quarter of the memory that
holding their predictions (galaxies x answers x T float32) would take; the script prints that
cost, so a reader sees the check could fail (at the default sizes holding the predictions would
add about 90 MiB). Peak RSS ratios are printed too.

    .venv/bin/python benchmarks/predict_memory.py
    .venv/bin/python benchmarks/predict_memory.py --galaxies 2000 --with-summary
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Growth per extra galaxy, as a share of what keeping its predictions in memory would take.
GOAL_SHARE = 0.25
RESULT_PREFIX = "PREDICT_MEMORY_RESULT "


def run_worker(job: dict) -> None:
    """In the fresh process: predict one catalogue and print the memory figures as JSON."""
    import psutil

    from zooflow.posteriors import gather_and_summarise
    from zooflow.predict import predict_catalogue
    from zooflow.schema import load_schema

    schema = load_schema(job["tree"])
    out = Path(job["out"])

    def predict(shards: str, path: Path) -> int:
        return predict_catalogue(
            job["model"],
            [shards],
            schema,
            path,
            passes=job["passes"],
            batch_size=job["batch_size"],
            seed=job["seed"],
        )

    predict(job["warm_up_shards"], out.with_name("warm_up.h5"))
    rss_before = psutil.Process().memory_info().rss
    started = time.perf_counter()
    count = predict(job["shards"], out)
    if job["with_summary"]:
        gather_and_summarise(
            [out], out.with_name("gathered.h5"), out.with_name("summary.parquet"), schema
        )
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    result = {
        "count": count,
        "seconds": seconds,
        "peak_mib": peak_kib / 1024,
        "before_mib": rss_before / 2**20,
    }
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def measure(job: dict) -> dict:
    """Run one worker process and return what it reported."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        raise SystemExit(
            f"worker for {job['shards']} failed ({done.returncode}):\n"
            f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        )
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--galaxies", type=int, default=2500, help="the small catalogue, N")
    parser.add_argument("--factor", type=int, default=10, help="the large one has factor x N")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--tree", default="decals_dr5")
    parser.add_argument("--passes", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--examples-per-shard", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=1, help="worker runs per size; max kept")
    parser.add_argument("--with-summary", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(json.loads(args.worker))
        return

    import keras
    from _survey import build_benchmark_model, write_synthetic_shards

    from zooflow.schema import load_schema

    schema = load_schema(args.tree)
    sizes = {"N": args.galaxies, f"{args.factor}N": args.factor * args.galaxies}
    with tempfile.TemporaryDirectory(prefix="predict_memory_") as tmp:
        root = Path(tmp)
        keras.utils.set_random_seed(args.seed)
        model_path = root / "model.keras"
        build_benchmark_model(schema, args.image_size, args.channels, seed=args.seed).save(
            model_path
        )
        warm_up_shards = write_synthetic_shards(
            root / "warm_up",
            schema,
            n_galaxies=args.batch_size,
            image_size=args.image_size,
            channels=args.channels,
            examples_per_shard=args.examples_per_shard,
            seed=args.seed + 1,
        )
        shards = {
            label: write_synthetic_shards(
                root / label,
                schema,
                n_galaxies=n,
                image_size=args.image_size,
                channels=args.channels,
                examples_per_shard=args.examples_per_shard,
                seed=args.seed,
            )
            for label, n in sizes.items()
        }
        results: dict[str, list[dict]] = {label: [] for label in sizes}
        for repeat in range(args.repeats):
            for label in sizes:  # alternate sizes, so background load hits both alike
                job = {
                    "model": str(model_path),
                    "shards": str(shards[label]),
                    "warm_up_shards": str(warm_up_shards),
                    "out": str(root / label / f"predictions_{repeat}.h5"),
                    "tree": args.tree,
                    "passes": args.passes,
                    "batch_size": args.batch_size,
                    "seed": args.seed,
                    "with_summary": args.with_summary,
                }
                result = measure(job)
                if result["count"] != sizes[label]:
                    raise SystemExit(f"{label}: predicted {result['count']} of {sizes[label]}")
                results[label].append(result)
                print(
                    f"  {label} = {sizes[label]} galaxies: peak RSS {result['peak_mib']:.0f} MiB "
                    f"(RSS {result['before_mib']:.0f} MiB after the warm-up), "
                    f"{result['seconds']:.1f} s",
                    flush=True,
                )

    peak = {label: max(r["peak_mib"] for r in runs) for label, runs in results.items()}
    before = {label: max(r["before_mib"] for r in runs) for label, runs in results.items()}
    small, large = sizes
    ratio = peak[large] / peak[small]
    growth = {label: peak[label] - before[label] for label in sizes}
    steps = "predict_catalogue + gather_and_summarise" if args.with_summary else "predict_catalogue"
    print(
        f"{steps}, {args.image_size}x{args.image_size}x{args.channels} px, T={args.passes}, "
        f"batch {args.batch_size}: peak RSS {peak[small]:.0f} MiB for {sizes[small]} galaxies, "
        f"{peak[large]:.0f} MiB for {sizes[large]}; above the RSS after the warm-up: "
        f"{growth[small]:.0f} MiB vs {growth[large]:.0f} MiB"
    )
    extra_galaxies = sizes[large] - sizes[small]
    holding_mib = extra_galaxies * schema.n_answers * args.passes * 4 / 2**20
    extra_mib = growth[large] - growth[small]
    verdict = "PASS" if extra_mib <= GOAL_SHARE * holding_mib else "FAIL"
    print(
        f"predict_memory: {args.factor}x galaxies ({sizes[large]} vs {sizes[small]}) -> peak RSS "
        f"{ratio:.2f}x; the {extra_galaxies} extra galaxies cost {extra_mib:.0f} MiB above the "
        f"warm-up, {extra_mib / holding_mib:.2f}x the {holding_mib:.0f} MiB that holding their "
        f"predictions would take (goal <= {GOAL_SHARE}x) {verdict}"
    )


if __name__ == "__main__":
    main()
