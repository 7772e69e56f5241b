"""Reading shards back: the one reader training, prediction and the tests use.

A run names the splits it reads by their shard folders (or manifests); :func:`shard_files`
checks every manifest (presence, checksums, and that its vote columns are the tree's), and
:func:`make_dataset` streams the examples as batches for Keras. The shard format itself, and its
writer, are in :mod:`zooflow.shards`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from zooflow.ids import read_csv_with_ids
from zooflow.schema import Schema
from zooflow.shards import ShardError, parse_example, read_manifest


def manifest_path(source: str | Path) -> Path:
    """A split's manifest, given the manifest itself or the split's shard folder."""
    source = Path(source)
    return source / "manifest.json" if source.is_dir() else source


def shard_files(
    sources: Sequence[str | Path],
    shard_group: tuple[int, int] | None = None,
    *,
    verify_checksums: bool = True,
    schema: Schema | None = None,
) -> tuple[list[tuple[str, int]], tuple[int, int, int]]:
    """(file, examples) of the given splits' shards (optionally one group of G, for parallel
    prediction), and the image shape. With ``schema``, every manifest's vote columns must be the
    tree's: shards written for another tree (or question suffix) would be read as garbage."""
    files: list[tuple[str, int]] = []
    shapes = set()
    for source in sources:
        path = manifest_path(source)
        manifest = read_manifest(path, verify_checksums=verify_checksums)
        if schema is not None and list(manifest["label_cols"]) != list(schema.label_cols):
            raise ShardError(
                f"{path}: shards were written for columns {manifest['label_cols'][:3]}..., not "
                f"tree {schema.name!r} with {schema.label_cols[:3]}... ({schema.n_answers} answers)"
            )
        shapes.add(tuple(manifest["image_shape"]))
        files.extend((str(path.parent / e["name"]), int(e["count"])) for e in manifest["files"])
    if len(shapes) > 1:
        raise ValueError(f"shards disagree on the image shape: {sorted(shapes)}")
    if shard_group is not None:
        group, n_groups = shard_group
        if not 0 <= group < n_groups:
            raise ValueError(f"shard group {group} is not one of 0..{n_groups - 1}")
        files = files[group::n_groups]
    return files, (shapes.pop() if shapes else (0, 0, 0))


def read_labels(labels: pd.DataFrame | str | Path, schema: Schema) -> pd.DataFrame:
    """A labelled set: ``id_str`` plus the schema's vote columns (a DataFrame or a CSV)."""
    if not isinstance(labels, pd.DataFrame):
        labels = read_csv_with_ids(labels)
    missing = [c for c in ["id_str", *schema.label_cols] if c not in labels.columns]
    if missing:
        raise ValueError(f"labelled set lacks columns {missing[:5]}")
    if labels["id_str"].duplicated().any():
        dup = labels.loc[labels["id_str"].duplicated(), "id_str"].iloc[0]
        raise ValueError(f"labelled set lists galaxy {dup!r} twice")
    votes = labels[schema.label_cols].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(votes) | (votes < 0)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"labelled set row {row} ({labels['id_str'].iloc[row]}): vote count "
            f"{votes[row, col]} in {schema.label_cols[col]} is not a non-negative number"
        )
    return labels


def read_ids(ids: Sequence[str] | str | Path | None) -> list[str] | None:
    """Galaxy ids given directly or as a CSV file with an ``id_str`` column."""
    if ids is None:
        return None
    if isinstance(ids, str | Path):
        return read_csv_with_ids(ids)["id_str"].tolist()
    return [str(i) for i in ids]


def make_dataset(
    sources: Sequence[str | Path],
    schema: Schema,
    *,
    batch_size: int,
    ids: Sequence[str] | str | Path | None = None,
    labels: pd.DataFrame | str | Path | None = None,
    shuffle: bool = False,
    shuffle_buffer: int = 2048,
    seed: int = 0,
    cache: bool = False,
    deterministic: bool = True,
    with_ids: bool = False,
    shard_group: tuple[int, int] | None = None,
    in_order: bool = False,
    label_schema: Schema | None = None,
):
    """Batches of (image float32, votes float32) — or (image, votes, id_str) — from shards.

    ``sources`` are shard folders or their manifests. ``ids`` keeps only those galaxies.
    ``labels`` (id_str + vote columns) keeps only its galaxies *and* takes their votes from it
    instead of the shards: an active-learning round trains on exactly the votes the oracle has
    revealed, and the pool's held-back votes in the shards are never read. ``in_order`` reads
    the shards one after another, so galaxies come out in catalogue order (for prediction
    files); otherwise shards are interleaved for throughput. ``label_schema`` is the tree of
    ``labels`` when it is not the shards' ``schema`` (a new question being fine-tuned): the
    images come from the shards, every vote from ``labels``.
    """
    if label_schema is not None and labels is None:
        raise ValueError("label_schema describes the labels table: give labels too")
    shard_list, image_shape = shard_files(sources, shard_group, schema=schema)
    files = [name for name, _ in shard_list]
    ids = read_ids(ids)
    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(files or [""], dtype=tf.string))
    if not files:
        dataset = dataset.take(0)
    if shuffle:
        dataset = dataset.shuffle(max(len(files), 1), seed=seed)
    if in_order:
        dataset = dataset.flat_map(tf.data.TFRecordDataset)
    else:
        dataset = dataset.interleave(
            tf.data.TFRecordDataset,
            cycle_length=4,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic,
        )
    dataset = dataset.map(
        lambda record: parse_example(record, schema.n_answers, image_shape),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    revealed = None
    if labels is not None:
        label_schema = label_schema or schema
        table = read_labels(labels, label_schema)
        ids = table["id_str"].tolist()
        revealed = tf.constant(
            table[label_schema.label_cols].to_numpy(np.float32).reshape(-1, label_schema.n_answers)
        )
    if ids is not None:
        # id -> row in `ids` (+1, so that 0 means "not wanted")
        row_of = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(ids or [""], dtype=tf.string),
                tf.range(1, len(ids) + 1, dtype=tf.int64) if ids else tf.zeros([1], tf.int64),
            ),
            default_value=0,
        )
        dataset = dataset.filter(lambda ex: row_of.lookup(ex["id_str"]) > 0)
    # Known size: Keras counts steps instead of guessing, and a wanted galaxy missing from the
    # shards fails loudly instead of silently shrinking the training set. (A shard group holds
    # only part of the wanted ids, so the check applies to whole splits.)
    if ids is None:
        dataset = dataset.apply(
            tf.data.experimental.assert_cardinality(sum(n for _, n in shard_list))
        )
    elif shard_group is None:
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(ids)))

    def to_arrays(ex):
        image = tf.cast(ex["image"], tf.float32)
        if revealed is None:
            votes = tf.cast(ex["votes"], tf.float32)
        else:
            votes = tf.gather(revealed, row_of.lookup(ex["id_str"]) - 1)
        return (image, votes, ex["id_str"]) if with_ids else (image, votes)

    dataset = dataset.map(to_arrays, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = deterministic
    return dataset.with_options(options)


def load_split(source: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A whole split in memory, in shard order: ids (str), votes (G, A) int64, images uint8.

    Meant for tests and small data; training and prediction stream with :func:`make_dataset`.
    """
    path = manifest_path(source)
    manifest = read_manifest(path, verify_checksums=True)
    files = [str(path.parent / entry["name"]) for entry in manifest["files"]]
    n_answers, image_shape = len(manifest["label_cols"]), manifest["image_shape"]
    ids: list[str] = []
    votes = np.zeros((0, n_answers), dtype=np.int64)
    images = np.zeros((0, *image_shape), dtype=np.uint8)
    if files:
        dataset = (
            tf.data.TFRecordDataset(files)
            .map(lambda record: parse_example(record, n_answers, image_shape))
            .batch(1024)
        )
        vote_blocks, image_blocks = [], []
        for batch in dataset.as_numpy_iterator():
            ids.extend(value.decode("utf-8") for value in batch["id_str"])
            vote_blocks.append(batch["votes"])
            image_blocks.append(batch["image"])
        votes, images = np.concatenate(vote_blocks), np.concatenate(image_blocks)
    if len(ids) != manifest["count"]:
        raise ShardError(f"{path}: read {len(ids)} examples, manifest says {manifest['count']}")
    return np.asarray(ids, dtype=str), votes, images
