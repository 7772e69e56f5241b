"""Data-release tables, in the form GZ DECaLS published its automated morphologies.

From a predictions file (Dirichlet concentrations per galaxy, answer and dropout pass), two
tables per catalogue or split, written chunk by chunk so memory stays flat:

* ``{name}_advanced.parquet``: ``id_str`` and, per answer ``{question}{suffix}_{answer}``:

  - ``_fraction``: the expected vote fraction under the mixture of the passes' Dirichlets,
    i.e. the mean over passes of α_a / Σ_q α;
  - ``_90pc-lower`` / ``_90pc-upper``: for each pass, the 5% and 95% quantiles of the answer's
    Beta(α_a, Σ_q α − α_a) marginal; the table gives the median of each over the passes;
  - ``_proportion-asked``: the expected share of volunteers who would be asked the answer's
    question, the product of the predicted fractions of the answers leading to it (1 for a
    root question), repeated for each answer of the question.

* ``{name}_friendly.parquet`` (and ``.csv``): ``id_str`` and every ``_fraction``, NaN where
  fewer than half of the volunteers would be asked the question (proportion asked < 0.5), so
  that nobody reads a bar fraction for an elliptical galaxy.

These follow the definitions of Walmsley et al. (2022) and Zoobot's table writer (which finds
the Beta quantiles on a grid; here they are exact), so tables made here and there line up
column by column.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.special import betaincinv

from zooflow.atomic import atomic_path
from zooflow.ids import ID_COLUMN
from zooflow.posteriors import mean_vote_fractions
from zooflow.schema import Schema

INTERVAL = 0.9
# Below this expected share of volunteers asked, the friendly table leaves the answer empty.
MIN_PROPORTION_ASKED = 0.5


def _check_predictions(f: h5py.File, path: str | Path, schema: Schema) -> None:
    head = str(f.attrs.get("head", "dirichlet"))
    if head != "dirichlet":
        raise ValueError(
            f"{path}: release tables need Dirichlet concentrations, but this file holds the "
            f"{head!r} head's predictions (train.head: dirichlet)"
        )
    stored = [c.decode() if isinstance(c, bytes) else str(c) for c in f["label_cols"][:]]
    if stored != schema.label_cols:
        raise ValueError(
            f"{path}: its answers ({stored[:3]}...) are not those of tree {schema.name!r} with "
            f"suffix {schema.question_suffix!r} ({schema.label_cols[:3]}...)"
        )


def release_tables(
    ids: np.ndarray, concentrations: np.ndarray, schema: Schema
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(friendly, advanced) tables for ``concentrations`` (galaxies, answers, passes)."""
    alpha = np.asarray(concentrations, dtype=np.float64)
    if alpha.ndim != 3 or alpha.shape[1] != schema.n_answers:
        raise ValueError(
            f"concentrations have shape {alpha.shape}; expected (galaxies, {schema.n_answers} "
            f"answers of tree {schema.name!r}, passes)"
        )
    question_sums = np.empty_like(alpha)
    for question in schema.questions:
        question_sums[:, question.indices] = alpha[:, question.indices].sum(axis=1, keepdims=True)
    fractions = mean_vote_fractions(alpha, schema)
    tail = (1 - INTERVAL) / 2
    rest = question_sums - alpha
    # The Beta quantiles (scipy.stats.beta.ppf's own function, without scipy.stats' import).
    lower = np.median(betaincinv(alpha, rest, tail), axis=2)
    upper = np.median(betaincinv(alpha, rest, 1 - tail), axis=2)
    asked = schema.p_asked(fractions)[:, schema.answer_question_index]

    cols = schema.label_cols
    id_column = pd.DataFrame({ID_COLUMN: np.asarray(ids, dtype=str)})
    fraction_table = pd.DataFrame(fractions, columns=[f"{c}_fraction" for c in cols])
    friendly = pd.concat([id_column, fraction_table.where(asked >= MIN_PROPORTION_ASKED)], axis=1)
    advanced = pd.concat(
        [
            id_column,
            fraction_table,
            pd.DataFrame(lower, columns=[f"{c}_90pc-lower" for c in cols]),
            pd.DataFrame(upper, columns=[f"{c}_90pc-upper" for c in cols]),
            pd.DataFrame(asked, columns=[f"{c}_proportion-asked" for c in cols]),
        ],
        axis=1,
    )
    return friendly, advanced


def write_release_tables(
    predictions: str | Path | Sequence[str | Path],
    friendly_path: str | Path,
    advanced_path: str | Path,
    friendly_csv_path: str | Path,
    schema: Schema,
    *,
    chunk: int = 4096,
) -> int:
    """Write the three tables of one predictions file, or of several one after the other (a
    catalogue's splits); returns the number of galaxies."""
    files = [predictions] if isinstance(predictions, str | Path) else list(predictions)
    writers: list[pq.ParquetWriter] = []
    count = 0
    with ExitStack() as stack:
        partial = [
            stack.enter_context(atomic_path(p))
            for p in (friendly_path, advanced_path, friendly_csv_path)
        ]
        with partial[2].open("w", newline="") as csv:
            for path in files:
                with h5py.File(path, "r") as f:
                    _check_predictions(f, path, schema)
                    n = f["id_str"].shape[0]
                    for start in range(0, n, chunk):
                        ids = np.asarray(f["id_str"].asstr()[start : start + chunk], dtype=str)
                        friendly, advanced = release_tables(
                            ids, f["predictions"][start : start + chunk], schema
                        )
                        tables = [
                            pa.Table.from_pandas(t, preserve_index=False)
                            for t in (friendly, advanced)
                        ]
                        if not writers:
                            writers = [
                                pq.ParquetWriter(p, t.schema)
                                for p, t in zip(partial, tables, strict=False)
                            ]
                        for writer, table in zip(writers, tables, strict=True):
                            writer.write_table(table)
                        friendly.to_csv(csv, index=False, header=count == 0, lineterminator="\n")
                        count += len(ids)
        if not writers:  # no galaxy at all: empty tables with every column
            friendly, advanced = release_tables(
                np.array([], dtype=str), np.zeros((0, schema.n_answers, 1)), schema
            )
            for p, table in zip(partial, (friendly, advanced), strict=False):
                table.to_parquet(p, index=False)
            friendly.to_csv(partial[2], index=False, lineterminator="\n")
        for writer in writers:
            writer.close()
    return count
