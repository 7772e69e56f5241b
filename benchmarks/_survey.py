"""Shared by the Bayesian-CNN benchmarks: a synthetic survey written as real shards, and a model.

The images are cheap synthetic galaxies (an elliptical exponential light profile on a noisy sky,
drawn with numpy in blocks), not GalSim renderings: decoding, reading and the network's cost do
not depend on what the pixels show. They go through the library's own writer
(:func:`zooflow.shards.write_split_shards`) from an ``images.h5`` / ``catalogue.parquet`` /
``splits.csv`` triple laid out as preprocessing and splitting write them, so the shards are
exactly what the workflow trains and predicts on.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from zooflow.schema import Schema  # noqa: E402

IMAGE_BLOCK = 1024  # galaxies drawn and written at a time, so memory stays small


def synthetic_images(rng: np.random.Generator, n: int, size: int, channels: int) -> np.ndarray:
    """(n, size, size, channels) uint8: 230·exp(−r/r_e) ellipses plus N(12, 5) sky noise.

    r is the elliptical radius for a random centre, axis ratio and position angle; r_e is a
    random 4–15 % of the side.
    """
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    centre = rng.uniform(0.45 * size, 0.55 * size, (n, 2, 1, 1)).astype(np.float32)
    scale = rng.uniform(0.04, 0.15, (n, 1, 1)).astype(np.float32) * size
    axis_ratio = rng.uniform(0.3, 1.0, (n, 1, 1)).astype(np.float32)
    angle = rng.uniform(0.0, np.pi, (n, 1, 1)).astype(np.float32)
    dx, dy = xx - centre[:, 0], yy - centre[:, 1]
    along = dx * np.cos(angle) + dy * np.sin(angle)
    across = (dy * np.cos(angle) - dx * np.sin(angle)) / axis_ratio
    profile = 230.0 * np.exp(-np.hypot(along, across) / scale)
    pixels = profile[..., None] + rng.normal(12.0, 5.0, (n, size, size, channels))
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def synthetic_votes(rng: np.random.Generator, n: int, schema: Schema) -> np.ndarray:
    """(n, answers) int64 counts that obey the tree: a question gets the votes of its parent answer.

    Root questions get 20–60 volunteers; each question's volunteers split by a multinomial with
    Dirichlet(1) answer probabilities.
    """
    votes = np.zeros((n, schema.n_answers), dtype=np.int64)
    # Trees list parents before children, so a parent answer is filled before its question.
    for question, parent in zip(schema.questions, schema.parent_index, strict=True):
        asked = rng.integers(20, 61, n) if parent is None else votes[:, parent]
        probabilities = rng.dirichlet(np.ones(len(question.answers)), n)
        votes[:, question.indices] = rng.multinomial(asked, probabilities)
    return votes


def write_synthetic_shards(
    folder: str | Path,
    schema: Schema,
    *,
    n_galaxies: int,
    image_size: int,
    channels: int = 1,
    split: str = "pool",
    examples_per_shard: int = 256,
    seed: int = 0,
) -> Path:
    """Write ``n_galaxies`` synthetic galaxies as one split's shards under ``folder``.

    Returns the shard folder (``folder/shards/<split>``, with its ``manifest.json``). Every
    galaxy goes to ``split``; the intermediate images.h5, catalogue and splits CSV stay in
    ``folder``.
    """
    from zooflow.shards import write_split_shards

    started = time.perf_counter()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = [f"SYN{i:08d}" for i in range(n_galaxies)]
    catalogue = pd.DataFrame(synthetic_votes(rng, n_galaxies, schema), columns=schema.label_cols)
    catalogue.insert(0, "id_str", ids)
    catalogue.to_parquet(folder / "catalogue.parquet", index=False)
    pd.DataFrame({"id_str": ids, "split": split}).to_csv(folder / "splits.csv", index=False)
    with h5py.File(folder / "images.h5", "w") as h5:
        images = h5.create_dataset(
            "images", shape=(n_galaxies, image_size, image_size, channels), dtype=np.uint8
        )
        h5.create_dataset("id_str", data=ids, dtype=h5py.string_dtype("utf-8"))
        for start in range(0, n_galaxies, IMAGE_BLOCK):
            count = min(IMAGE_BLOCK, n_galaxies - start)
            images[start : start + count] = synthetic_images(rng, count, image_size, channels)
    shards = folder / "shards" / split
    write_split_shards(
        folder / "images.h5",
        folder / "catalogue.parquet",
        folder / "splits.csv",
        split,
        shards,
        schema,
        examples_per_shard=examples_per_shard,
        threads=min(2, os.cpu_count() or 1),
    )
    print(
        f"  wrote {n_galaxies} synthetic {image_size}x{image_size}x{channels} galaxies as "
        f"shards in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return shards


def build_benchmark_model(
    schema: Schema,
    image_size: int,
    channels: int = 1,
    *,
    model: str = "w20_cnn",
    head: str = "dirichlet",
    augment: bool = True,
    seed: int = 0,
):
    """A freshly initialised zooflow model, built as training builds it (TrainingConfig defaults:
    in-model augmentation, the architecture's dropout rate)."""
    from zooflow.training import TrainingConfig, build_training_model

    config = TrainingConfig(model=model, head=head, augment=augment)
    return build_training_model(config, schema, (image_size, image_size, channels), seed)
