"""Posterior files without TensorFlow: Zoobot's HDF5 layout, gathering, per-galaxy summaries.

HDF5 layout: ``predictions`` (galaxy, answer, pass) float32 — Dirichlet concentrations, or ρ for
the binomial head; ``id_str``; ``votes`` (the catalogue's counts, for evaluation); ``label_cols``;
attrs ``head`` and ``passes``. Summaries give, per galaxy and answer, the mean predicted vote
fraction, a central interval and P(question asked).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from zooflow.schema import Schema

STRING = h5py.string_dtype("utf-8")


def read_predictions(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(id_str, votes, predictions, attrs) from a predictions HDF5 file."""
    with h5py.File(path, "r") as f:
        ids = f["id_str"].asstr()[:]
        votes = f["votes"][:]
        predictions = f["predictions"][:]
        attrs = dict(f.attrs)
    return np.asarray(ids, dtype=str), votes, predictions, attrs


def gather_predictions(
    parts: Sequence[str | Path], out_path: str | Path, *, block: int = 4096
) -> int:
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
                    # Block by block, so memory stays flat however large the catalogue.
                    for start in range(0, n, block):
                        stop = min(start + block, n)
                        out[name][count + start : count + stop] = f[name][start:stop]
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
