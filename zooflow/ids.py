"""Galaxy ids as text, exactly as the catalogue wrote them, through every file the workflow writes.

Ids are names, not numbers: an SDSS ``dr7objid`` has 18 digits, more than a float64 holds (it
rounds 587722981741363294 to 587722981741363328), and ``NA`` or ``None`` are valid names that
pandas would read as missing. Every CSV with an ``id_str`` column is read through here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

ID_COLUMN = "id_str"


def read_csv_with_ids(
    path: str | Path, id_columns: tuple[str, ...] = (ID_COLUMN,), **kwargs
) -> pd.DataFrame:
    """``pd.read_csv`` with ``id_columns`` as the exact text of each cell ('' where empty).

    Other columns are read as pandas reads them (empty cells and 'NA' are missing there).
    """
    table = pd.read_csv(path, dtype=dict.fromkeys(id_columns, str), **kwargs)
    present = [c for c in id_columns if c in table.columns]
    if present and len(table):
        text = pd.read_csv(path, usecols=present, **_exact_text(kwargs))
        for column in present:
            table[column] = text[column].to_numpy()
    return table


def iter_csv_with_ids(
    path: str | Path, id_columns: tuple[str, ...], chunk_rows: int, **kwargs
) -> Iterator[pd.DataFrame]:
    """:func:`read_csv_with_ids` in blocks of ``chunk_rows`` rows (one empty block for a
    header-only file), so that a catalogue of any length is read in bounded memory."""
    tables = pd.read_csv(path, dtype=dict.fromkeys(id_columns, str), chunksize=chunk_rows, **kwargs)
    texts = None
    with tables:
        for table in tables:
            present = [c for c in id_columns if c in table.columns]
            if present and texts is None:
                # A second reader over the same rows, in step, for the exact text of the ids.
                texts = pd.read_csv(
                    path, usecols=present, chunksize=chunk_rows, **_exact_text(kwargs)
                )
            if present and len(table):
                text = next(texts)
                for column in present:
                    table[column] = text[column].to_numpy()
            yield table
    if texts is not None:
        texts.close()


def _exact_text(kwargs: dict) -> dict:
    """read_csv options that read every cell as its text, with the caller's separator."""
    return {
        "dtype": str,
        "keep_default_na": False,
        "sep": kwargs.get("sep", ","),
        "compression": kwargs.get("compression", "infer"),
    }


def float_id_error(column: str, where: str | Path) -> str:
    """Why a floating-point id column is refused, and how to fix it."""
    return (
        f"catalogue {where}: id column {column!r} holds floating-point numbers, which cannot "
        "keep long ids exactly (a float64 rounds the 18-digit 587722981741363294 to "
        "587722981741363328). Write the ids as text or as 64-bit integers, e.g. re-export with "
        f"df[{column!r}] = df[{column!r}].astype(str) before any conversion to float, or read "
        "the original table with dtype=str for that column."
    )


def hash_uniform(id_str: Iterable[str], seed: int) -> np.ndarray:
    """A number in [0, 1) per galaxy that depends on nothing but the seed and its id (splits and
    the explorer's sample draw by it): ``u = floor(h / 2**11) / 2**53``, ``h`` the first 8
    digest bytes (big-endian).

    ``h`` is the leading 64 bits of ``sha256(f"{seed}:{id_str}")``; keeping its top 53 bits makes
    ``u`` exact in float64 and strictly below 1.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    top_bits = [
        int.from_bytes(hashlib.sha256(f"{seed}:{galaxy}".encode()).digest()[:8], "big") >> 11
        for galaxy in id_str
    ]
    return np.asarray(top_bits, dtype=np.float64) / float(2**53)
