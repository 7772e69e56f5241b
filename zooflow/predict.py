"""MC-dropout posteriors for every galaxy, streamed to Zoobot's HDF5 layout.

Dropout sits only in the head, so the convolutional trunk runs once per batch and the head is
sampled T times on those features, by tiling them T times along the batch: the same
distribution as T full passes at a fraction of the cost. Batches are written to resizable HDF5
datasets as they come, so memory does not grow with the catalogue.

HDF5 layout: ``predictions`` (galaxy, answer, pass) float32 — Dirichlet concentrations, or ρ for
the binomial head; ``id_str``; ``label_cols``; attrs ``head`` and ``passes``.
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

from zooflow.schema import Schema

log = logging.getLogger(__name__)

STRING = h5py.string_dtype("utf-8")


def load_model(path: str | Path) -> keras.Model:
    """A trained zooflow model; importing zooflow's modules registers its custom objects."""
    import zooflow.losses  # noqa: F401  (registers serialisable losses)
    import zooflow.models  # noqa: F401  (registers MCDropout and heads)

    return keras.models.load_model(path, compile=False)


def sample_posteriors(trunk, head, images, passes: int) -> np.ndarray:
    """(batch, outputs, passes): the trunk once, the dropout head ``passes`` times."""
    features = trunk(images, training=False)
    tiled = tf.repeat(features, passes, axis=0)  # galaxy-major: g0 x T, g1 x T, ...
    out = head(tiled, training=False)
    out = tf.reshape(tf.cast(out, tf.float32), (-1, passes, out.shape[-1]))
    return tf.transpose(out, (0, 2, 1)).numpy()


def sample_posteriors_full_passes(model, images, passes: int) -> np.ndarray:
    """The naive reference: ``passes`` full forward passes (for tests and benchmarks)."""
    out = [tf.cast(model(images, training=False), tf.float32).numpy() for _ in range(passes)]
    return np.stack(out, axis=-1)


def iter_posterior_batches(
    model_path: str | Path,
    manifests: Sequence[str | Path],
    schema: Schema,
    *,
    passes: int,
    batch_size: int = 256,
    ids: Sequence[str] | str | Path | None = None,
    shard_group: tuple[int, int] | None = None,
    seed: int = 0,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (id_str, votes, samples) per batch."""
    from zooflow.models import split_trunk_head
    from zooflow.training import make_dataset

    keras.utils.set_random_seed(seed)
    model = load_model(model_path)
    trunk, head = split_trunk_head(model)
    dataset = make_dataset(
        manifests,
        schema,
        batch_size=batch_size,
        ids=ids,
        with_ids=True,
        deterministic=True,
        shard_group=shard_group,
        in_order=True,
    )
    for images, votes, id_str in dataset:
        samples = sample_posteriors(trunk, head, images, passes)
        yield (
            np.char.decode(id_str.numpy().astype(bytes), "utf-8"),
            votes.numpy().astype(np.int64),
            samples,
        )


def predict_catalogue(
    model_path: str | Path,
    manifests: Sequence[str | Path],
    schema: Schema,
    out_path: str | Path,
    *,
    head: str = "dirichlet",
    passes: int = 30,
    batch_size: int = 256,
    ids: Sequence[str] | str | Path | None = None,
    shard_group: tuple[int, int] | None = None,
    seed: int = 0,
) -> int:
    """Write MC-dropout samples for every galaxy in the shards (or in ``ids``); return the count.

    ``shard_group`` (g, G) predicts only every G-th shard starting at g, so G jobs can share a
    large catalogue and :func:`gather_predictions` joins them.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    n_outputs = schema.n_answers if head == "dirichlet" else 1
    count = 0
    with h5py.File(tmp, "w") as f:
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
        f.attrs.update(head=head, passes=passes, schema=schema.name)
        for ids_batch, votes, samples in iter_posterior_batches(
            model_path,
            manifests,
            schema,
            passes=passes,
            batch_size=batch_size,
            ids=ids,
            shard_group=shard_group,
            seed=seed,
        ):
            n = len(ids_batch)
            for ds in (predictions, id_str, votes_ds):
                ds.resize(count + n, axis=0)
            predictions[count : count + n] = samples
            id_str[count : count + n] = ids_batch.astype(object)
            votes_ds[count : count + n] = votes
            count += n
    tmp.replace(out_path)
    log.info("wrote %d galaxies x %d passes to %s", count, passes, out_path)
    return count


def read_predictions(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(id_str, votes, predictions, attrs) from a predictions HDF5 file."""
    with h5py.File(path, "r") as f:
        ids = f["id_str"].asstr()[:]
        votes = f["votes"][:]
        predictions = f["predictions"][:]
        attrs = dict(f.attrs)
    return np.asarray(ids, dtype=str), votes, predictions, attrs


def gather_predictions(parts: Sequence[str | Path], out_path: str | Path) -> int:
    """Concatenate shard-group prediction files (written by parallel jobs) into one."""
    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.name + ".tmp")
    count = 0
    with h5py.File(tmp, "w") as out:
        for i, part in enumerate(parts):
            with h5py.File(part, "r") as f:
                n = f["id_str"].shape[0]
                if i == 0:
                    for name in ("predictions", "votes"):
                        ds = f[name]
                        out.create_dataset(
                            name,
                            shape=(0, *ds.shape[1:]),
                            maxshape=(None, *ds.shape[1:]),
                            dtype=ds.dtype,
                            chunks=ds.chunks,
                            compression=ds.compression,
                        )
                    out.create_dataset("id_str", shape=(0,), maxshape=(None,), dtype=STRING)
                    out.create_dataset("label_cols", data=f["label_cols"][:], dtype=STRING)
                    out.attrs.update(dict(f.attrs))
                for name in ("predictions", "votes", "id_str"):
                    out[name].resize(count + n, axis=0)
                    out[name][count : count + n] = f[name][:]
                count += n
    tmp.replace(out_path)
    return count


def mean_vote_fractions(concentrations: np.ndarray, schema: Schema) -> np.ndarray:
    """(G, A, T) concentrations -> (G, A) expected vote fraction α_a / Σ_q α, mean over passes."""
    fractions = np.empty_like(concentrations, dtype=np.float64)
    for q in schema.questions:
        block = concentrations[:, q.indices, :].astype(np.float64)
        fractions[:, q.indices, :] = block / block.sum(axis=1, keepdims=True)
    return fractions.mean(axis=2)


def summarise_predictions(
    ids: np.ndarray,
    predictions: np.ndarray,
    schema: Schema,
    *,
    head: str = "dirichlet",
    binomial_answer: str | None = None,
    interval: float = 0.9,
    draws_per_pass: int = 20,
    seed: int = 0,
) -> pd.DataFrame:
    """Per galaxy and answer: mean predicted vote fraction, a central interval, P(asked).

    The posterior of an answer's vote fraction is the mixture over passes of
    Beta(α_a, Σα − α_a) (the Dirichlet's marginal); its interval comes from ``draws_per_pass``
    draws per pass with a fixed seed. For the binomial head the per-pass ρ are the samples.
    """
    rng = np.random.default_rng(seed)
    lo_q, hi_q = (1 - interval) / 2, 1 - (1 - interval) / 2
    if head == "binomial":
        rho = predictions.reshape(len(ids), -1)
        col = binomial_answer or "rho"
        return pd.DataFrame(
            {
                "id_str": ids,
                f"{col}_fraction": rho.mean(axis=1),
                f"{col}_fraction_lo": np.quantile(rho, lo_q, axis=1),
                f"{col}_fraction_hi": np.quantile(rho, hi_q, axis=1),
            }
        )
    mean = mean_vote_fractions(predictions, schema)
    totals = np.empty_like(predictions, dtype=np.float64)
    for q in schema.questions:
        totals[:, q.indices, :] = predictions[:, q.indices, :].sum(axis=1, keepdims=True)
    alpha = predictions.astype(np.float64)[..., None]
    beta = (totals - predictions)[..., None]
    draws = rng.beta(
        np.broadcast_to(alpha, (*alpha.shape[:-1], draws_per_pass)),
        np.broadcast_to(beta, (*beta.shape[:-1], draws_per_pass)),
    ).reshape(len(ids), schema.n_answers, -1)
    lo, hi = np.quantile(draws, [lo_q, hi_q], axis=2)
    p_asked = schema.p_asked(mean)
    columns: dict[str, np.ndarray] = {"id_str": ids}
    for i, col in enumerate(schema.label_cols):
        columns[f"{col}_fraction"] = mean[:, i]
        columns[f"{col}_fraction_lo"] = lo[:, i]
        columns[f"{col}_fraction_hi"] = hi[:, i]
    for j, q in enumerate(schema.questions):
        columns[f"{q.name}{schema.question_suffix}_p_asked"] = p_asked[:, j]
    return pd.DataFrame(columns)


def write_summary(
    predictions_path: str | Path,
    out_path: str | Path,
    schema: Schema,
    *,
    binomial_answer: str | None = None,
    chunk: int = 512,
    seed: int = 0,
) -> None:
    """Summary parquet from a predictions file, chunk by chunk (memory flat in catalogue size)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.name + ".tmp")
    writer = None
    with h5py.File(predictions_path, "r") as f:
        head = str(f.attrs["head"])
        n = f["id_str"].shape[0]
        for start in range(0, max(n, 1), chunk):
            ids = np.asarray(f["id_str"].asstr()[start : start + chunk], dtype=str)
            table = pa.Table.from_pandas(
                summarise_predictions(
                    ids,
                    f["predictions"][start : start + chunk],
                    schema,
                    head=head,
                    binomial_answer=binomial_answer,
                    seed=seed + start,
                ),
                preserve_index=False,
            )
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
    if writer is not None:
        writer.close()
    tmp.replace(out_path)


def gather_and_summarise(
    parts: Sequence[str | Path],
    predictions_path: str | Path,
    summary_path: str | Path,
    schema: Schema,
    *,
    binomial_answer: str | None = None,
    seed: int = 0,
) -> int:
    """Join shard-group predictions into one file and write its per-galaxy summary."""
    count = gather_predictions(parts, predictions_path)
    write_summary(
        predictions_path, summary_path, schema, binomial_answer=binomial_answer, seed=seed
    )
    return count
