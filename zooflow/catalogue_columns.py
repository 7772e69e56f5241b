"""The columns a catalogue must have, and how its names map onto the tree's.

Ingest reads these checks once per catalogue, before any row is looked at, so that a table with
the wrong columns stops with one message listing everything it lacks (and, where its names look
like a shipped mapping or another question suffix, which setting would fix it).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from zooflow.ids import ID_COLUMN
from zooflow.schema import Schema

FILE_COLUMN = "file_loc"


class IngestError(RuntimeError):
    """A catalogue that cannot be ingested: unreadable, missing columns, or too many bad rows."""


def resolve_column_mapping(
    schema: Schema, column_mapping: Mapping[str, str] | str | None
) -> dict[str, str]:
    """{catalogue column: schema column} from None (identity), a dict, or a shipped mapping name."""
    if column_mapping is None:
        return {}
    if isinstance(column_mapping, str):
        try:
            return schema.external_mapping(column_mapping)
        except KeyError as err:
            raise IngestError(str(err.args[0])) from err
    known = set(schema.label_cols) | set(schema.total_cols)
    unknown = {src: dst for src, dst in column_mapping.items() if dst not in known}
    if unknown:
        raise IngestError(
            f"column_mapping maps onto columns that tree {schema.name!r} does not have: {unknown}"
        )
    return dict(column_mapping)


def check_columns(
    frame: pd.DataFrame,
    schema: Schema,
    mapping: dict[str, str],
    id_column: str,
    file_column: str,
    file_template: str | None,
    where: str | Path,
) -> None:
    """Raise one IngestError listing every required column the catalogue lacks."""
    source_of = {dst: src for src, dst in mapping.items()}
    present = set(frame.columns)
    missing = []
    if id_column not in present:
        missing.append(f"{id_column} (id column)")
    for col in schema.label_cols:
        src = source_of.get(col, col)
        if src not in present:
            missing.append(src if src == col else f"{src} (for {col})")
    if missing:
        hint = ""
        if not mapping:
            shipped = [
                name
                for name in schema.external_columns
                if present & set(schema.external_mapping(name))
            ]
            if shipped:
                hint = (
                    f"; its columns look like a shipped mapping, try column_mapping={shipped[0]!r}"
                )
            elif not present & set(schema.label_cols):
                raise IngestError(_no_vote_columns(schema, present, where))
        raise IngestError(
            f"catalogue {where} lacks {len(missing)} required column(s): {', '.join(missing)}{hint}"
        )
    if file_column not in present and file_template is None:
        raise IngestError(
            f"catalogue {where} has no image column {file_column!r} and no file_template was "
            "given (e.g. file_template='{" + id_column + "}.png')"
        )
    if file_column not in present:
        fields = template_fields(file_template)
        unknown = sorted(f for f in fields if f not in present and f != ID_COLUMN)
        if unknown:
            raise IngestError(
                f"file_template {file_template!r} names column(s) {unknown} that catalogue "
                f"{where} does not have"
            )
    renamed = [mapping.get(c, c) for c in frame.columns]
    clashes = sorted({c for c in renamed if renamed.count(c) > 1})
    if clashes:
        raise IngestError(
            f"catalogue {where}: after column_mapping these columns appear twice: {clashes}"
        )
    for reserved, source in ((ID_COLUMN, id_column), (FILE_COLUMN, file_column)):
        if reserved != source and reserved in present:
            raise IngestError(
                f"catalogue {where} has a column {reserved!r} besides the chosen column "
                f"{source!r}; the output names {source!r} {reserved!r}, so drop or rename one"
            )


def _no_vote_columns(schema: Schema, present: set[str], where: str | Path) -> str:
    """Why none of the tree's vote columns is there; often a question_suffix that does not match
    ('smooth-or-featured-dr5_smooth' wants question_suffix '-dr5')."""
    first = schema.questions[0]
    pattern = re.compile(rf"^{re.escape(first.name)}(.*)_{re.escape(first.answers[0])}$")
    message = (
        f"catalogue {where} has none of the {schema.n_answers} vote columns of tree "
        f"{schema.name!r}: no column matches schema.question_suffix {schema.question_suffix!r} "
        f"(which names the first {schema.label_cols[0]!r})"
    )
    for column in sorted(present):
        match = pattern.match(column)
        if match:
            return (
                f"{message}, but the catalogue has {column!r}: set schema.question_suffix to "
                f"{match.group(1)!r}"
            )
    return f"{message}; its columns include {sorted(present)[:5]}"


def template_fields(file_template: str) -> set[str]:
    """Column names a format string refers to ('{id_str[:2]}/{id_str}.png' -> {'id_str'})."""
    try:
        parsed = list(string.Formatter().parse(file_template))
    except ValueError as err:
        raise IngestError(
            f"file_template {file_template!r} is not a valid format string: {err}"
        ) from err
    names = {name for _, name, _, _ in parsed if name is not None}
    if "" in names or any(name.isdigit() for name in names):
        raise IngestError(
            f"file_template {file_template!r} must name columns, e.g. '{{id_str}}.png'"
        )
    return {name.split(".")[0].split("[")[0] for name in names}
