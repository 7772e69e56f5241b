"""The row checks of ids and vote counts, shared by catalogue ingest and later votes.

:mod:`zooflow.catalogue` applies them to every row of a catalogue and :func:`check_votes` to
votes that arrive after ingest (a campaign's volunteers, :mod:`zooflow.rounds`), so both reject
the same rows with the same reasons: an id that is missing, repeated, a floating-point number
or padded with spaces; a vote count that is empty (in a row with other counts), non-numeric,
non-finite, negative or not an integer; a question whose total strays from its parent answer's
count by more than the tolerance. Every check appends its reasons to one list per row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from zooflow.ids import ID_COLUMN
from zooflow.schema import Schema

# How many offending columns one reason names before summarising the rest.
_MAX_COLUMNS_NAMED = 3


def is_missing(value: object) -> bool:
    """An empty cell: None, pandas' NA or a float NaN."""
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def _format_value(value: object) -> str:
    """Show a cell as a person would write it: -3 rather than -3.0, 'abc' quoted."""
    if isinstance(value, str):
        return repr(value)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return repr(value)
    if np.isfinite(number) and number == int(number):
        return str(int(number))
    return repr(number)


def normalise_ids(ids: pd.Series) -> list[str | None]:
    """Ids as the exact text of each cell (int64 ids as their digits); None where missing.

    Nothing is stripped or rounded: an id is the same string in every output.
    """
    out: list[str | None] = []
    for value in ids.tolist():
        if is_missing(value):
            out.append(None)
        else:
            text = str(value)
            out.append(text if text.strip() else None)
    return out


def id_reasons(
    ids: list[str | None],
    raw: pd.Series,
    id_column: str,
    reasons: list[list[str]],
    first_row: dict[str, int] | None = None,
    offset: int = 0,
) -> None:
    """Append why each id cannot be used to its row's reasons.

    A table read in blocks passes the same ``first_row`` ({id: row where first seen}) to every
    block and the block's first row number as ``offset``, so a repeat is found across blocks and
    every row number is the table's.
    """
    first_row = {} if first_row is None else first_row
    for index, (value, cell) in enumerate(zip(ids, raw.tolist(), strict=True)):
        row = offset + index
        if value is None:
            reasons[index].append(f"missing id in column {id_column}")
        elif isinstance(cell, float):
            reasons[index].append(
                f"id {value} in column {id_column} is a floating-point number, which may have "
                "been rounded; write ids as text or 64-bit integers"
            )
        elif value != value.strip():
            reasons[index].append(
                f"id {value!r} in column {id_column} has spaces around it; ids are kept exactly, "
                "so remove them in the catalogue"
            )
        elif value in first_row:
            reasons[index].append(
                f"duplicate {id_column} {value!r} (first seen at row {first_row[value]})"
            )
        else:
            first_row[value] = row


def _blank_cells(column: pd.Series) -> np.ndarray:
    blank = column.isna().to_numpy(copy=True)
    if not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)):
        blank |= column.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy(dtype=bool)
    return blank


def vote_counts(
    frame: pd.DataFrame,
    schema: Schema,
    reasons: list[list[str]],
    shown: Mapping[str, str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Parse vote cells; record bad cells in ``reasons``, naming each column as ``shown`` maps
    it (the catalogue's own name when a column mapping renamed it).

    Returns (counts, usable): counts is (rows, answers) float with unlabelled rows as zeros,
    usable marks rows whose every count is a finite non-negative integer.
    """
    n_rows, n_answers = len(frame), schema.n_answers
    values = np.full((n_rows, n_answers), np.nan)
    blank = np.zeros((n_rows, n_answers), dtype=bool)
    non_numeric = np.zeros((n_rows, n_answers), dtype=bool)
    for j, col in enumerate(schema.label_cols):
        column = frame[col]
        numeric = pd.to_numeric(column, errors="coerce").astype(np.float64).to_numpy()
        blank[:, j] = _blank_cells(column)
        non_numeric[:, j] = np.isnan(numeric) & ~blank[:, j]
        values[:, j] = numeric

    unlabelled = blank.all(axis=1)
    problems = {
        "vote count is NaN/empty in column {col}": blank & ~unlabelled[:, None],
        "non-numeric vote count {value} in {col}": non_numeric,
        "non-finite vote count {value} in {col}": np.isinf(values),
        "negative vote count {value} in {col}": values < 0,
        "non-integer vote count {value} in {col}": np.isfinite(values)
        & (values != np.round(values)),
    }
    usable = np.ones(n_rows, dtype=bool)
    raw = frame[schema.label_cols]
    names = [(shown or {}).get(col, col) for col in schema.label_cols]
    for template, bad in problems.items():
        for row in np.flatnonzero(bad.any(axis=1)):
            cols = np.flatnonzero(bad[row])
            first = cols[0]
            # Show the parsed number where there is one (-3, not '-3' from a text column).
            cell = raw.iat[row, first] if non_numeric[row, first] else values[row, first]
            reason = template.format(col=names[first], value=_format_value(cell))
            if len(cols) > 1:
                named = ", ".join(names[c] for c in cols[1:_MAX_COLUMNS_NAMED])
                more = len(cols) - _MAX_COLUMNS_NAMED
                reason += f" (also {named}" + (f" and {more} more)" if more > 0 else ")")
            reasons[row].append(reason)
            usable[row] = False
    counts = np.where(unlabelled[:, None], 0.0, values)
    return counts, usable


def tree_reasons(
    counts: np.ndarray,
    usable: np.ndarray,
    schema: Schema,
    tree_tolerance: float,
    tree_tolerance_votes: float,
    reasons: list[list[str]],
    shown: Mapping[str, str] | None = None,
) -> None:
    """Reject rows where a question's total strays from its parent answer's count (columns
    named as ``shown`` maps them, as in :func:`vote_counts`).

    allowed = max(tree_tolerance_votes, tree_tolerance * parent_count); a question answered
    although its parent answer got no votes is held to the same rule (allowed = the vote floor).
    """

    def name(column: str) -> str:
        return (shown or {}).get(column, column)

    for question, parent in zip(schema.questions, schema.parent_index, strict=True):
        if parent is None:
            continue
        # Where a mapping renamed the columns, say which of the user's columns make the total.
        columns = schema.label_cols[question.indices]
        answers = (
            f" ({' + '.join(map(name, columns))})"
            if any(column in (shown or {}) for column in columns)
            else ""
        )
        total = counts[:, question.indices].sum(axis=1)
        parent_count = counts[:, parent]
        allowed = np.maximum(tree_tolerance_votes, tree_tolerance * parent_count)
        # Counts are integers, so a tiny epsilon only guards the tolerance product.
        bad = usable & (np.abs(total - parent_count) > allowed + 1e-9)
        for row in np.flatnonzero(bad):
            relation = "exceeds" if total[row] > parent_count[row] else "is below"
            reasons[row].append(
                f"{question.name} total {int(total[row])}{answers} {relation} parent "
                f"{name(schema.label_cols[parent])} count {int(parent_count[row])} "
                f"(tolerance {allowed[row]:g} = max({tree_tolerance_votes:g} votes, "
                f"{tree_tolerance:g} x {int(parent_count[row])}))"
            )


@dataclass
class CheckedVotes:
    """Per-row outcome of ingest's id and vote checks on a table of ``id_str`` + vote columns."""

    ids: list[str | None]
    counts: np.ndarray  # (rows, answers) int64; zeros for a row nobody has voted on
    reasons: list[list[str]]  # empty for a usable row

    @property
    def usable(self) -> np.ndarray:
        return np.array([not r for r in self.reasons], dtype=bool)

    @property
    def labelled(self) -> np.ndarray:
        """Usable rows with at least one vote: an all-empty or all-zero row labels nothing."""
        return self.usable & (self.counts.sum(axis=1) > 0)


def check_votes(
    frame: pd.DataFrame,
    schema: Schema,
    *,
    id_column: str = ID_COLUMN,
    tree_tolerance: float = 0.1,
    tree_tolerance_votes: float = 1,
) -> CheckedVotes:
    """Ingest's checks of ids, vote counts and tree consistency, without the images.

    For votes that arrive after ingest (a campaign's volunteers): the same rules, so the same
    reasons. ``frame`` must already hold every ``schema.label_cols`` column.
    """
    reasons: list[list[str]] = [[] for _ in range(len(frame))]
    ids = normalise_ids(frame[id_column])
    id_reasons(ids, frame[id_column], id_column, reasons)
    counts, usable = vote_counts(frame, schema, reasons)
    tree_reasons(counts, usable, schema, tree_tolerance, tree_tolerance_votes, reasons)
    counts = np.where(np.isfinite(counts), counts, 0).astype(np.int64)
    return CheckedVotes(ids=ids, counts=counts, reasons=reasons)
