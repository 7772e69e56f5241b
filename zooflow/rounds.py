"""Who is labelled when: training sets of the supervised run and of active-learning rounds."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from zooflow.schema import Schema

log = logging.getLogger(__name__)


def read_splits(
    splits_path: str | Path, catalogue_path: str | Path, schema: Schema | None = None
) -> pd.DataFrame:
    """id_str, split, labelled (and the votes, given a schema): one row per galaxy, in order."""
    splits = pd.read_csv(splits_path, dtype={"id_str": str})
    columns = ["id_str", "labelled", *(schema.label_cols if schema else [])]
    labelled = pd.read_parquet(catalogue_path, columns=columns)
    table = labelled.merge(splits, on="id_str", how="left", validate="one_to_one")
    if table["split"].isna().any():
        missing = table.loc[table["split"].isna(), "id_str"].head(3).tolist()
        raise ValueError(f"{splits_path} has no split for galaxies such as {missing}")
    return table


def write_labelled_from_splits(
    splits_path: str | Path,
    catalogue_path: str | Path,
    schema: Schema,
    splits: Sequence[str],
    out_path: str | Path,
) -> pd.DataFrame:
    """Every galaxy with votes in the given splits, with its votes: a training set."""
    table = read_splits(splits_path, catalogue_path, schema)
    keep = table["split"].isin(list(splits)) & table["labelled"]
    chosen = table.loc[keep, ["id_str", "split", *schema.label_cols]]
    chosen.to_csv(out_path, index=False)
    log.info("%d labelled galaxies in %s", len(chosen), ", ".join(splits))
    return chosen
