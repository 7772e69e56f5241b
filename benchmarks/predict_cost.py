"""What do T MC-dropout samples cost, against one deterministic forward pass?

On the same batch of images (w20_cnn, 64 px greyscale, decals_dr5's 34 answers, batch 256 by
default) this times, round by round after a warm-up:

* one pass: one forward pass of the whole model, compiled with ``tf.function``;
* head sampling: ``zooflow.predict.sample_posteriors`` (the trunk once, the dropout head T times),
  exactly as prediction calls it;
* full passes: ``zooflow.predict.sample_posteriors_full_passes`` given the same compiled forward
  pass as "one pass", so the only difference is doing it T times.

Each result is copied to a numpy array, as prediction does. One pass and head sampling run back
to back in every round (order alternating), so each round gives a ratio measured under one load;
the verdict uses the median of those wall-clock ratios (the CPU-time ratio, steadier when other
jobs share the cores, is printed too). The goal: head sampling with T = 30 costs at most 1.3x
one pass (full passes cost about T x).

    .venv/bin/python benchmarks/predict_cost.py
    .venv/bin/python benchmarks/predict_cost.py --batch-size 64 --rounds 9 --full-pass-rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _survey import build_benchmark_model, synthetic_images  # noqa: E402

from zooflow.models import split_trunk_head  # noqa: E402
from zooflow.predict import sample_posteriors, sample_posteriors_full_passes  # noqa: E402
from zooflow.schema import load_schema  # noqa: E402

GOAL = 1.3


def seconds_of(call: Callable[[], np.ndarray]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call; CPU time sums every thread of this process."""
    started, cpu_started = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - started, time.process_time() - cpu_started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="w20_cnn")
    parser.add_argument("--tree", default="decals_dr5")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--passes", type=int, default=30, help="MC-dropout samples T")
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds of one pass + sampling")
    parser.add_argument(
        "--full-pass-rounds",
        type=int,
        default=1,
        help="rounds that also time the T full passes (each costs about T one-passes)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    schema = load_schema(args.tree)
    model = build_benchmark_model(
        schema, args.image_size, args.channels, model=args.model, seed=args.seed
    )
    trunk, head = split_trunk_head(model)
    rng = np.random.default_rng(args.seed)
    images = tf.constant(
        synthetic_images(rng, args.batch_size, args.image_size, args.channels), tf.float32
    )
    forward = tf.function(lambda batch, training=False: model(batch, training=training))

    methods: dict[str, Callable[[], np.ndarray]] = {
        "one pass": lambda: forward(images).numpy(),
        "head sampling": lambda: sample_posteriors(trunk, head, images, args.passes),
        "full passes": lambda: sample_posteriors_full_passes(forward, images, args.passes),
    }
    # Warm-up: traces, oneDNN primitive caches, thread pools; also a shape check.
    one = methods["one pass"]()
    fast = methods["head sampling"]()
    methods["head sampling"]()
    expected = (args.batch_size, one.shape[-1], args.passes)
    if fast.shape != expected:
        raise SystemExit(f"sample_posteriors gave shape {fast.shape}, expected {expected}")

    rounds: list[dict[str, float]] = []  # wall seconds
    cpu_rounds: list[dict[str, float]] = []
    for round_index in range(args.rounds):
        # One pass and head sampling run back to back, in alternating order, so that both see
        # the same load; the long full passes come after them.
        pair = ["one pass", "head sampling"][:: 1 if round_index % 2 == 0 else -1]
        if round_index < args.full_pass_rounds:
            pair.append("full passes")
        measured = {name: seconds_of(methods[name]) for name in pair}
        rounds.append({name: wall for name, (wall, _) in measured.items()})
        cpu_rounds.append({name: cpu for name, (_, cpu) in measured.items()})
        shown = ", ".join(f"{name} {seconds:.3f} s" for name, seconds in rounds[-1].items())
        print(f"  round {round_index + 1}/{args.rounds}: {shown}", flush=True)

    def median_ratio(name: str, table: list[dict[str, float]]) -> float:
        """Median over rounds of (name's seconds / the same round's one pass)."""
        return statistics.median(r[name] / r["one pass"] for r in table if name in r)

    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    medians = {
        name: statistics.median(r[name] for r in rounds if name in r)
        for name in methods
        if any(name in r for r in rounds)
    }
    print(
        f"{args.model} {args.image_size}x{args.image_size}x{args.channels}, {args.tree} "
        f"({schema.n_answers} answers), batch {args.batch_size}, T={args.passes}, "
        f"{device}; median seconds per batch: "
        + ", ".join(f"{name} {seconds:.3f}" for name, seconds in medians.items())
    )
    ratio = median_ratio("head sampling", rounds)
    print(
        f"CPU time (steadier on a shared machine): head sampling / one pass = "
        f"{median_ratio('head sampling', cpu_rounds):.2f}x"
    )
    if "full passes" in medians:
        print(
            f"full passes / one pass = {median_ratio('full passes', rounds):.1f}x wall, "
            f"{median_ratio('full passes', cpu_rounds):.1f}x CPU (T={args.passes})"
        )
    verdict = "PASS" if ratio <= GOAL else "FAIL"
    print(
        f"predict_cost: T={args.passes} head-sampling / one pass = {ratio:.2f}x "
        f"(goal <= {GOAL}x) {verdict}"
    )


if __name__ == "__main__":
    main()
