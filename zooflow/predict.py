"""MC-dropout posteriors for every galaxy, streamed to Zoobot's HDF5 layout.

Dropout sits only in the head, so the convolutional trunk runs once per batch and the head is
sampled T times on those features: the same distribution as T full passes at a fraction of the
cost. Pass t applies one dropout mask, drawn from the prediction seed, to every galaxy of the
catalogue, so sample t is one network of the ensemble everywhere: the T samples are joint draws
of the model posterior across galaxies, which measures that relate galaxies to each other (EPIG,
:mod:`zooflow.information`) need, and a catalogue split over shard groups gets the same samples.
Batches are written to resizable HDF5 datasets as they come, so memory does not grow with the
catalogue.

The HDF5 layout, and everything done with it after prediction (gathering shard groups,
summaries), lives in :mod:`zooflow.posteriors`, which needs no TensorFlow.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py
import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from zooflow.atomic import atomic_path
from zooflow.data import make_dataset, read_ids, shard_files
from zooflow.modelcard import read_model_card
from zooflow.models import head_of, load_model, split_head_dropout, split_trunk_head
from zooflow.posteriors import STRING
from zooflow.runlog import Progress
from zooflow.schema import Schema

log = logging.getLogger(__name__)


def dropout_masks(n_features: int, rate: float, passes: int, seed: int) -> np.ndarray:
    """(passes, n_features) inverted-dropout masks: 0 where a unit is dropped, else 1/(1 − rate).

    Drawn from ``seed`` alone, so every batch, shard group and job of a prediction uses the same
    T networks.
    """
    keep = np.random.default_rng([seed, n_features, passes]).random((passes, n_features)) >= rate
    return (keep / (1.0 - rate)).astype(np.float32)


@tf.function(reduce_retracing=True)
def _head_samples(trunk, head_after_dropout, images, masks) -> tf.Tensor:
    """Compiled body of :func:`sample_posteriors`.

    A graph, not eager calls: TensorFlow's graph optimiser fuses each convolution with its bias
    and ReLU, and eager Keras pays Python dispatch per layer. Run eagerly, T = 30 samples cost
    ~1.6x a compiled forward pass of the whole model; compiled, ~1.06x
    (benchmarks/predict_cost.py). The models are arguments, not closed over, so one trace serves
    each model and dropping the model frees it.
    """
    features = trunk(images, training=False)
    passes = tf.shape(masks)[0]
    masked = features[:, None, :] * tf.cast(masks, features.dtype)[None, :, :]  # (B, T, F)
    out = head_after_dropout(tf.reshape(masked, (-1, features.shape[-1])), training=False)
    out = tf.reshape(tf.cast(out, tf.float32), (-1, passes, out.shape[-1]))
    # The trunk's pooled features come back too: a galaxy's representation costs nothing extra.
    return tf.transpose(out, (0, 2, 1)), tf.cast(features, tf.float32)


def sample_posteriors(trunk, head, images, passes: int, *, seed: int = 0) -> np.ndarray:
    """(batch, outputs, passes): the trunk once, then the head under each of ``passes`` masks.

    Sample t of every galaxy uses dropout mask t of :func:`dropout_masks` (``seed``), so the
    cost is one trunk pass plus T head passes, and the same seed gives the same T networks.
    """

    rate, rest = split_head_dropout(head)
    masks = dropout_masks(int(trunk.output.shape[-1]), rate, int(passes), seed)
    return _head_samples(trunk, rest, images, masks)[0].numpy()


def sample_posteriors_full_passes(model, images, passes: int) -> np.ndarray:
    """The naive reference: ``passes`` full forward passes (for tests and benchmarks)."""
    out = [tf.cast(model(images, training=False), tf.float32).numpy() for _ in range(passes)]
    return np.stack(out, axis=-1)


def iter_posterior_batches(
    model: str | Path | keras.Model,
    manifests: Sequence[str | Path],
    schema: Schema,
    *,
    passes: int,
    batch_size: int = 256,
    ids: Sequence[str] | str | Path | None = None,
    shard_group: tuple[int, int] | None = None,
    seed: int = 0,
    labels: pd.DataFrame | None = None,
    label_schema: Schema | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (id_str, votes, samples, features) per batch; ``model`` is a saved model's path or
    the model. ``features`` (batch, F) are the trunk's pooled features (dropout off): the
    representation the samples were drawn from. ``labels`` / ``label_schema``: the galaxies and
    votes to use instead of the shards' (as in :func:`zooflow.data.make_dataset`)."""

    keras.utils.set_random_seed(seed)
    if not isinstance(model, keras.Model):
        model = load_model(model)
    trunk, head = split_trunk_head(model)
    rate, head_after_dropout = split_head_dropout(head)
    masks = dropout_masks(int(trunk.output.shape[-1]), rate, int(passes), seed)
    dataset = make_dataset(
        manifests,
        schema,
        batch_size=batch_size,
        ids=ids,
        with_ids=True,
        deterministic=True,
        shard_group=shard_group,
        in_order=True,
        labels=labels,
        label_schema=label_schema,
    )
    for images, votes, id_str in dataset:
        samples, features = _head_samples(trunk, head_after_dropout, images, masks)
        yield (
            np.char.decode(id_str.numpy().astype(bytes), "utf-8"),
            votes.numpy().astype(np.int64),
            samples.numpy(),
            features.numpy(),
        )


def _expected_count(manifests, ids, shard_group) -> int:
    """Galaxies a prediction will write, for its progress: the wanted ones its shards hold."""

    files, _ = shard_files(manifests, shard_group, verify_checksums=False)
    in_shards = sum(count for _, count in files)
    wanted = read_ids(ids)
    return in_shards if wanted is None else min(in_shards, len(wanted))


def predict_catalogue(
    model: str | Path | keras.Model,
    manifests: Sequence[str | Path],
    schema: Schema,
    out_path: str | Path,
    *,
    head: str | None = None,
    passes: int = 30,
    batch_size: int = 256,
    ids: Sequence[str] | str | Path | None = None,
    shard_group: tuple[int, int] | None = None,
    seed: int = 0,
    features: bool = False,
    labels: pd.DataFrame | None = None,
    label_schema: Schema | None = None,
) -> int:
    """Write MC-dropout samples for every galaxy in the shards (or in ``ids``); return the count.

    ``features`` also writes each galaxy's representation, the trunk's pooled features
    (``features``, galaxies x F, float32) from the same forward pass as the samples.

    ``shard_group`` (g, G) predicts only every G-th shard starting at g, so G jobs can share a
    large catalogue and :func:`gather_predictions` joins them. ``head`` is read from the model
    (one output: binomial) unless given; it is written into the file's attributes, where
    everything downstream reads it. ``labels`` (id_str + ``label_schema``'s vote columns)
    predicts only those galaxies and stores their votes: a model of another tree than the
    shards' (fine-tuned to a new question) predicts on the same shards.
    """
    if not isinstance(model, keras.Model):
        model = load_model(model)
    head = head or head_of(model)
    out_path = Path(out_path)
    shard_schema, schema = schema, label_schema or schema
    n_outputs = schema.n_answers if head == "dirichlet" else 1
    count = 0
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as f:
        predictions = f.create_dataset(
            "predictions",
            shape=(0, n_outputs, passes),
            maxshape=(None, n_outputs, passes),
            dtype="float32",
            chunks=(min(batch_size, 256), n_outputs, passes),
            compression="gzip",
        )
        id_str = f.create_dataset("id_str", shape=(0,), maxshape=(None,), dtype=STRING)
        votes_ds = f.create_dataset(
            "votes", shape=(0, schema.n_answers), maxshape=(None, schema.n_answers), dtype="int64"
        )
        f.create_dataset("label_cols", data=np.array(schema.label_cols, dtype=object), dtype=STRING)
        written = [predictions, id_str, votes_ds]
        if features:
            width = int(split_trunk_head(model)[0].output.shape[-1])
            written.append(
                f.create_dataset(
                    "features",
                    shape=(0, width),
                    maxshape=(None, width),
                    dtype="float32",
                    chunks=(min(batch_size, 256), width),
                    compression="gzip",
                )
            )
        # "shared": pass t is one dropout mask for every galaxy (joint samples across galaxies).
        f.attrs.update(head=head, passes=passes, schema=schema.name, dropout_masks="shared")
        progress = Progress(
            f"predict {out_path.stem}",
            _expected_count(manifests, ids if labels is None else labels["id_str"], shard_group),
        )
        for ids_batch, votes, samples, pooled in iter_posterior_batches(
            model,
            manifests,
            shard_schema,
            passes=passes,
            batch_size=batch_size,
            ids=ids,
            shard_group=shard_group,
            seed=seed,
            labels=labels,
            label_schema=label_schema,
        ):
            n = len(ids_batch)
            for ds in written:
                ds.resize(count + n, axis=0)
            predictions[count : count + n] = samples
            id_str[count : count + n] = ids_batch.astype(object)
            votes_ds[count : count + n] = votes
            if features:
                written[3][count : count + n] = pooled
            count += n
            progress.advance(n)
    log.info("wrote %d galaxies x %d passes to %s", count, passes, out_path)
    return count


def predict_splits(
    model_path: str | Path,
    shards: dict[str, str | Path],
    schema: Schema,
    out_dir: str | Path,
    *,
    ids: dict[str, str | Path] | None = None,
    head: str | None = None,
    passes: int = 30,
    batch_size: int = 256,
    shard_group: tuple[int, int] | None = None,
    seed: int = 0,
    features: bool = False,
) -> dict[str, int]:
    """Predict several splits with one loaded model: ``out_dir/{split}.h5`` for each.

    ``shards`` maps split names to shard folders; ``ids`` optionally restricts a split to some
    galaxies (an active-learning round's waiting pool). One job per run, rather than per split,
    pays TensorFlow's start-up and the model's load and trace once. The head is the one the
    model file's card names (:mod:`zooflow.modelcard`), or else read from the model.
    """
    head = head or read_model_card(model_path).head
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = load_model(model_path)
    counts = {}
    for split, folder in shards.items():
        counts[split] = predict_catalogue(
            model,
            [folder],
            schema,
            out_dir / f"{split}.h5",
            head=head,
            passes=passes,
            batch_size=batch_size,
            ids=(ids or {}).get(split),
            shard_group=shard_group,
            seed=seed,
            features=features,
        )
    return counts
