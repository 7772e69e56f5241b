"""The odd ones out: a per-galaxy outlier score in the representation space.

A galaxy is unusual when few galaxies lie near it in what the network learned. The score is the
Euclidean distance from a galaxy's compressed representation (the run's ``{split}_pca.parquet``
tables, see ``zooflow.representations``) to its ``k``-th nearest galaxy, the k-NN outlier
score of Ramaswamy, Rastogi & Shim (2000); the galaxy itself does not count. Large means
isolated. The ranking (``rank`` 1 = most unusual) is the list a volunteer team should look at
first.

Neighbours are searched among a reference set: every galaxy when the catalogue has at most
``reference_size`` galaxies (exact), otherwise a uniform sample of that size drawn with
``seed``. With a sample, the score is the distance to the ``k``-th nearest *sampled* galaxy:
the same local density measured on a coarser scale (scaling ``k`` down with the sample would
leave one or two neighbours and a noisy ranking), so the ranking keeps its order. The
catalogue is streamed in blocks against the reference (about 130 MB of distances at a time), so
memory is flat in the number of galaxies and time is linear in it.

Euclidean rather than cosine distance (which the similarity search uses): the principal
components keep the length of a representation, and an image unlike any training galaxy often
shows up as an unusually long or short feature vector, which cosine similarity would ignore.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from zooflow.ids import ID_COLUMN
from zooflow.representations import count_rows, read_pca_blocks

# Catalogue rows per block: a block's distances to the reference take about this many floats.
BLOCK_ELEMENTS = 1 << 24
COLUMNS = ["rank", ID_COLUMN, "outlier_score"]


def _reference(
    paths: list[Path], n_total: int, reference_size: int, seed: int, block: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(catalogue row, id and vector of each reference galaxy): every row, or a uniform sample
    of ``reference_size`` rows."""
    if n_total <= reference_size:
        rows = np.arange(n_total)
    else:
        rows = np.sort(np.random.default_rng(seed).choice(n_total, reference_size, replace=False))
    ids, vectors, start = [], [], 0
    for block_ids, block_vectors in read_pca_blocks(paths, block):
        inside = rows[(rows >= start) & (rows < start + len(block_ids))] - start
        ids.append(block_ids[inside])
        vectors.append(block_vectors[inside])
        start += len(block_ids)
    return rows, np.concatenate(ids), np.concatenate(vectors)


def outlier_scores(
    tables: Iterable[str | Path],
    *,
    k: int = 10,
    reference_size: int = 20_000,
    seed: int = 0,
    block: int | None = None,
) -> pd.DataFrame:
    """Every galaxy of ``tables`` with its outlier score (module docstring), most unusual
    first: a DataFrame of ``rank`` (1 = most unusual), ``id_str`` and ``outlier_score``."""
    paths = [Path(t) for t in tables]
    if k < 1:
        raise ValueError(f"anomalies.k must be at least 1, got {k}")
    if reference_size < 2:
        raise ValueError(f"anomalies.reference_size must be at least 2, got {reference_size}")
    n_total = count_rows(paths)
    if n_total <= k:
        raise ValueError(
            f"anomalies.k = {k} needs more than {k} galaxies; the catalogue has {n_total}"
        )
    if reference_size <= k:
        raise ValueError(
            f"anomalies.reference_size = {reference_size} must exceed anomalies.k = {k}"
        )
    block = block or max(1, BLOCK_ELEMENTS // min(n_total, reference_size))
    reference_rows, reference_ids, reference = _reference(
        paths, n_total, reference_size, seed, block
    )
    reference_norms = (reference**2).sum(axis=1)
    if len(reference_rows) == n_total:  # the whole catalogue is in memory: no second read
        blocks = (
            (reference_ids[i : i + block], reference[i : i + block])
            for i in range(0, n_total, block)
        )
    else:
        blocks = read_pca_blocks(paths, block)
    ids_out, scores_out, start = [], [], 0
    for ids, vectors in blocks:
        squared = (vectors**2).sum(axis=1)[:, None] + reference_norms[None, :]
        squared -= 2.0 * vectors @ reference.T
        # A galaxy of the reference is not its own neighbour.
        position = np.searchsorted(reference_rows, np.arange(start, start + len(ids)))
        position = np.minimum(position, len(reference_rows) - 1)
        itself = reference_rows[position] == np.arange(start, start + len(ids))
        squared[np.flatnonzero(itself), position[itself]] = np.inf
        kth = np.partition(squared, k - 1, axis=1)[:, k - 1]
        ids_out.append(ids)
        scores_out.append(np.sqrt(np.clip(kth, 0.0, None)))
        start += len(ids)
    scores = pd.DataFrame(
        {ID_COLUMN: np.concatenate(ids_out), "outlier_score": np.concatenate(scores_out)}
    )
    # Ties (identical galaxies) keep catalogue order, so the ranking is reproducible.
    scores = scores.sort_values("outlier_score", ascending=False, kind="stable")
    scores.insert(0, "rank", np.arange(1, len(scores) + 1))
    return scores.reset_index(drop=True)[COLUMNS]
