"""Can the tf.data input pipeline feed training with room to spare?

Writes ``--galaxies`` synthetic galaxies (64 px greyscale by default) as shards with the library,
then, as ``zooflow.training.train_model`` does (``configure_tensorflow`` with the
``TrainingConfig`` defaults, the labelled set passed as ``labels``, shuffling, but
``cache=False`` so that every epoch really reads and decodes the shards), measures
interleaved, round by round after a warm-up, median over the rounds:

(a) pipeline: examples/s of iterating one whole epoch of the training dataset with no model
    (a fresh iterator each round, as Keras starts one per epoch, so the shuffle buffer refills);
(b) training steps: examples/s that ``model.train_on_batch`` consumes on in-memory batches of
    the same shape, for the model train_model builds (w20_cnn with in-model augmentation,
    Dirichlet-multinomial loss and its per-question metrics, Adam).

The goal: (a) / (b) at least 3.

    .venv/bin/python benchmarks/input_pipeline.py
    .venv/bin/python benchmarks/input_pipeline.py --galaxies 8192 --rounds 3 --train-steps 12
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
from _survey import write_synthetic_shards  # noqa: E402

from zooflow.data import make_dataset  # noqa: E402
from zooflow.schema import load_schema  # noqa: E402
from zooflow.training import (  # noqa: E402
    TrainingConfig,
    _loss_and_metrics,
    build_training_model,
    configure_tensorflow,
)

GOAL = 3.0


def epoch_seconds(dataset: tf.data.Dataset) -> tuple[float, int]:
    """Wall seconds to pull every batch of one epoch from a fresh iterator, and the examples."""
    examples = 0
    started = time.perf_counter()
    for images, _votes in dataset:
        examples += int(images.shape[0])
    return time.perf_counter() - started, examples


def training_seconds(model: keras.Model, batches: list[tuple[tf.Tensor, tf.Tensor]], steps: int):
    """Wall seconds for ``steps`` train_on_batch calls cycling over in-memory batches."""
    started = time.perf_counter()
    for step in range(steps):
        images, votes = batches[step % len(batches)]
        model.train_on_batch(images, votes)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--galaxies", type=int, default=4096, help="examples per epoch")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--tree", default="decals_dr5")
    parser.add_argument("--model", default="w20_cnn")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--shuffle-buffer", type=int, default=TrainingConfig.shuffle_buffer)
    parser.add_argument("--examples-per-shard", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=8, help="training steps per round")
    parser.add_argument(
        "--labels",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pass the labelled set as train_model does (votes looked up by id)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    config = TrainingConfig(
        model=args.model,
        batch_size=args.batch_size,
        shuffle_buffer=args.shuffle_buffer,
        cache=False,
    )
    strategy = configure_tensorflow(args.seed, config.deterministic, config.device)
    schema = load_schema(args.tree)
    with tempfile.TemporaryDirectory(prefix="input_pipeline_") as tmp:
        root = Path(tmp)
        shards = write_synthetic_shards(
            root,
            schema,
            n_galaxies=args.galaxies,
            image_size=args.image_size,
            channels=args.channels,
            split="initial",
            examples_per_shard=args.examples_per_shard,
            seed=args.seed,
        )
        labels = pd.read_parquet(root / "catalogue.parquet") if args.labels else None
        batch_size = config.batch_size * max(strategy.num_replicas_in_sync, 1)
        train = make_dataset(
            [shards],
            schema,
            batch_size=batch_size,
            labels=labels,
            shuffle=True,
            shuffle_buffer=config.shuffle_buffer,
            seed=args.seed,
            cache=config.cache,
            deterministic=config.deterministic,
        )
        with strategy.scope():
            model = build_training_model(
                config, schema, (args.image_size, args.image_size, args.channels), args.seed
            )
            loss, metrics = _loss_and_metrics(config, schema)
            model.compile(
                optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
                loss=loss,
                metrics=metrics,
            )
        # In-memory batches of exactly the pipeline's shapes and values (full batches only).
        in_memory = [
            (tf.identity(images), tf.identity(votes))
            for images, votes in train.take(4)
            if images.shape[0] == batch_size
        ]
        if not in_memory:
            raise SystemExit(f"--galaxies {args.galaxies} gives no full batch of {batch_size}")

        # Warm-up: thread pools, file cache, the train function's trace.
        epoch_seconds(train)
        training_seconds(model, in_memory, 2)

        pipeline_rates, training_rates = [], []
        for round_index in range(args.rounds):
            seconds, examples = epoch_seconds(train)
            if examples != args.galaxies:
                raise SystemExit(f"an epoch gave {examples} examples, not {args.galaxies}")
            pipeline_rates.append(examples / seconds)
            seconds = training_seconds(model, in_memory, args.train_steps)
            training_rates.append(args.train_steps * batch_size / seconds)
            print(
                f"  round {round_index + 1}/{args.rounds}: pipeline {pipeline_rates[-1]:.0f} "
                f"examples/s, training steps {training_rates[-1]:.0f} examples/s",
                flush=True,
            )

    pipeline = statistics.median(pipeline_rates)
    training = statistics.median(training_rates)
    ratio = pipeline / training
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    print(
        f"{args.model} {args.image_size}x{args.image_size}x{args.channels}, batch {batch_size}, "
        f"{args.galaxies} galaxies in shards of {args.examples_per_shard}, shuffle buffer "
        f"{config.shuffle_buffer}, labels {'on' if args.labels else 'off'}, {device}; medians: "
        f"pipeline {pipeline:.0f} examples/s, training steps {training:.0f} examples/s"
    )
    verdict = "PASS" if ratio >= GOAL else "FAIL"
    print(
        f"input_pipeline: pipeline / training-step consumption = {ratio:.1f}x "
        f"(goal >= {GOAL:g}x) {verdict}"
    )


if __name__ == "__main__":
    main()
