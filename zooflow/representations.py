"""What the network learned about each galaxy: its representation, and a compressed copy.

The representation is the trunk's pooled feature vector with dropout off, written by the same
forward pass that draws the posterior samples (``predict_catalogue(..., features=True)``), so
asking for it costs no second pass over the images. This module turns the gathered prediction
files of a run into tables:

* ``{split}.parquet``: ``id_str`` and ``feature_000`` ... (float32), one row per galaxy;
* ``{split}_pca.parquet``: ``id_str`` and ``pca_00`` ... , the representation projected on the
  first ``n_components`` principal components;
* ``pca.json``: the projection (mean, components) and each component's explained variance ratio.

The principal components are fitted once per run, on every galaxy of every split, from the
feature mean and covariance accumulated block by block (memory flat in the number of galaxies,
F x F for F features), and each component's sign is fixed so that its largest loading is
positive: the same features give the same table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from zooflow.atomic import atomic_path
from zooflow.ids import ID_COLUMN
from zooflow.jsonfile import write_json

# Galaxies per block (and per Parquet row group): 2,048 x 256 float32 features is 2 MB. Small
# blocks reach steady memory early: with 8,192 the job's peak still grew from 10k to 100k
# galaxies (1.30x, the 10k splits being smaller than a block), with 2,048 it is flat (1.09x,
# benchmarks/survey_scale.py). Similarity search reads its query batches in blocks too.
BLOCK = 2048


@dataclass(frozen=True)
class Projection:
    mean: np.ndarray  # (F,)
    components: np.ndarray  # (k, F), rows of unit length, by decreasing variance
    explained_variance_ratio: np.ndarray  # (k,)
    n_galaxies: int

    def transform(self, features: np.ndarray) -> np.ndarray:
        return (np.asarray(features, dtype=np.float64) - self.mean) @ self.components.T


def fit_pca(blocks: Iterable[np.ndarray], n_components: int) -> Projection:
    """Principal components of the rows of every block (each (rows, F)), in one streaming pass."""
    if n_components < 1:
        raise ValueError(f"n_components must be at least 1, got {n_components}")
    total = None
    outer = None
    n = 0
    for block in blocks:
        block = np.asarray(block, dtype=np.float64)
        if block.size == 0:
            continue
        # Accumulate around the first block's mean: sums of large offsets would lose precision.
        if total is None:
            shift = block.mean(axis=0)
            total = np.zeros_like(shift)
            outer = np.zeros((len(shift), len(shift)))
        centred = block - shift
        total += centred.sum(axis=0)
        outer += centred.T @ centred
        n += len(block)
    if n < 2:
        raise ValueError(f"principal components need at least 2 galaxies, got {n}")
    mean_offset = total / n
    covariance = (outer - n * np.outer(mean_offset, mean_offset)) / (n - 1)
    variances, vectors = np.linalg.eigh(covariance)
    order = np.argsort(variances)[::-1]
    variances, vectors = np.clip(variances[order], 0, None), vectors[:, order]
    k = min(n_components, len(variances))
    components = vectors[:, :k].T
    largest = np.argmax(np.abs(components), axis=1)
    components *= np.sign(components[np.arange(k), largest])[:, None]
    explained = variances[:k] / variances.sum() if variances.sum() > 0 else np.zeros(k)
    return Projection(shift + mean_offset, components, explained, n)


def _blocks(path: str | Path, block: int) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    with h5py.File(path, "r") as f:
        if "features" not in f:
            raise ValueError(
                f"{path} holds no representations: predict with features=True "
                "(representations.enabled in the workflow)"
            )
        n = f["id_str"].shape[0]
        for start in range(0, n, block):
            yield (
                np.asarray(f["id_str"].asstr()[start : start + block], dtype=str),
                f["features"][start : start + block],
            )


def _write_table(path: Path, ids_and_values, prefix: str, width: int, digits: int) -> None:
    columns = [f"{prefix}{i:0{digits}d}" for i in range(width)]
    schema = pa.schema([(ID_COLUMN, pa.string())] + [(c, pa.float32()) for c in columns])
    with atomic_path(path) as temporary, pq.ParquetWriter(temporary, schema) as writer:
        for ids, values in ids_and_values:
            arrays = [pa.array(ids, pa.string())] + [
                pa.array(values[:, j].astype(np.float32)) for j in range(width)
            ]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))


def write_representations(
    predictions: Mapping[str, str | Path],
    out_dir: str | Path,
    *,
    n_components: int = 40,
    block: int = BLOCK,
) -> Projection:
    """Tables of the module docstring for each ``{name: gathered predictions file}``."""
    out_dir = Path(out_dir)
    projection = fit_pca(
        (features for path in predictions.values() for _, features in _blocks(path, block)),
        n_components,
    )
    width = projection.components.shape[1]
    k = projection.components.shape[0]
    for name, path in predictions.items():
        _write_table(out_dir / f"{name}.parquet", _blocks(path, block), "feature_", width, 3)
        _write_table(
            out_dir / f"{name}_pca.parquet",
            ((ids, projection.transform(values)) for ids, values in _blocks(path, block)),
            "pca_",
            k,
            2,
        )
    write_json(
        out_dir / "pca.json",
        {
            "n_galaxies": projection.n_galaxies,
            "n_features": width,
            "n_components": k,
            "explained_variance_ratio": projection.explained_variance_ratio.tolist(),
            "mean": projection.mean.tolist(),
            "components": projection.components.tolist(),
        },
    )
    return projection


def count_rows(tables: Iterable[str | Path]) -> int:
    """Galaxies in ``{split}_pca.parquet`` tables, from their metadata (nothing is read)."""
    return sum(pq.ParquetFile(t).metadata.num_rows for t in tables)


def read_pca_blocks(
    paths: Iterable[str | Path], block: int
) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """(ids, compressed representations as float64) of ``{split}_pca.parquet`` tables, in
    blocks of at most ``block`` galaxies, table after table."""
    for path in paths:
        table = pq.ParquetFile(path)
        for batch in table.iter_batches(batch_size=block):
            frame = batch.to_pandas()
            yield (
                frame[ID_COLUMN].to_numpy(dtype=str),
                frame.drop(columns=ID_COLUMN).to_numpy(dtype=np.float64),
            )


def unit_vectors(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (a zero row stays zero): cosine similarity is then a dot product."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def nearest_neighbours(
    tables: Iterable[str | Path], query_ids: Iterable[str], *, k: int = 10, block: int = BLOCK
):
    """The ``k`` galaxies most similar to each query, by cosine similarity of the compressed
    representations in ``tables`` (``{split}_pca.parquet`` files): a DataFrame of ``query_id``,
    ``rank`` (1 = most similar), ``id_str`` and ``similarity``, queries in the order given.

    Exact search, streamed in blocks: memory grows with the number of queries, not with the
    catalogue (a million galaxies take a few seconds per query batch on one core).
    """
    import pandas as pd

    tables = [Path(t) for t in tables]
    queries = list(dict.fromkeys(str(q) for q in query_ids))
    if k < 1:
        raise ValueError(f"similar.k must be at least 1, got {k}")
    n_galaxies = count_rows(tables)
    if k >= n_galaxies:
        raise ValueError(
            f"similar.k = {k}, but the catalogue has {n_galaxies} galaxies: a galaxy has at "
            f"most {n_galaxies - 1} others to be near"
        )
    found: dict[str, np.ndarray] = {}
    for ids, vectors in read_pca_blocks(tables, block):
        for row in np.flatnonzero(np.isin(ids, queries)):
            found[ids[row]] = vectors[row]
    missing = [q for q in queries if q not in found]
    if missing:
        raise ValueError(
            f"similar.ids {missing[:5]} are not galaxies of this run's catalogue "
            f"({len(missing)} of {len(queries)} not found)"
        )
    if not queries:
        return pd.DataFrame(columns=["query_id", "rank", "id_str", "similarity"])
    query_vectors = unit_vectors(np.stack([found[q] for q in queries]))
    best_ids = np.empty((len(queries), 0), dtype=object)
    best_similarity = np.empty((len(queries), 0))
    for ids, vectors in read_pca_blocks(tables, block):
        similarity = query_vectors @ unit_vectors(vectors).T  # (queries, block)
        similarity[np.asarray(queries)[:, None] == ids[None, :]] = -np.inf  # not itself
        merged_ids = np.concatenate([best_ids, np.broadcast_to(ids, similarity.shape)], axis=1)
        merged = np.concatenate([best_similarity, similarity], axis=1)
        keep = np.argsort(-merged, axis=1, kind="stable")[:, :k]
        best_ids = np.take_along_axis(merged_ids, keep, axis=1)
        best_similarity = np.take_along_axis(merged, keep, axis=1)
    rows = [
        {"query_id": query, "rank": rank + 1, "id_str": str(galaxy), "similarity": float(value)}
        for query, galaxies, values in zip(queries, best_ids, best_similarity, strict=True)
        for rank, (galaxy, value) in enumerate(zip(galaxies, values, strict=True))
        if np.isfinite(value)
    ]
    return pd.DataFrame(rows, columns=["query_id", "rank", "id_str", "similarity"])
