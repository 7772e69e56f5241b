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

BLOCK = 8192


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
