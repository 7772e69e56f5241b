"""Catalogue ingest: check every row of a volunteer-vote catalogue and split it into clean and rejected.

A catalogue (CSV or parquet) has one row per galaxy: an id, an image path (or a template that
builds one from the id), and one vote-count column per answer of the decision tree. Each row is
checked and either kept or rejected with a reason that names the offending column and value:

* the id is present, unique (the first occurrence of a repeated id is kept) and kept exactly:
  text with no surrounding spaces, or an integer (a floating-point id column is refused);
* the image file exists and decodes (16-bit, RGBA and odd-sized images are fine: preprocessing
  converts them later);
* vote counts are finite, non-negative integers;
* the tree is consistent: for every question q with parent answer p,
  ``|sum_a votes[q_a] - votes[p]| <= max(tree_tolerance_votes, tree_tolerance * votes[p])``.
  Real GZ2 / GZ DECaLS tables carry small inconsistencies, hence the tolerance.

A row whose vote cells are all empty (or all zero) is a galaxy nobody has labelled yet; it is
kept with zero counts and ``labelled=False``, as active learning needs such galaxies. A row
with only some empty cells is rejected.

The id and vote checks live in :mod:`zooflow.vote_checks`, which votes arriving after ingest
share; this module reads the catalogue, maps its columns, checks the images, writes the result
and reads its columns back for later stages.

The clean table has ``id_str``, ``file_loc`` (absolute path), the other input columns unchanged,
every ``schema.label_cols`` and ``schema.total_cols`` as int64 (totals recomputed from the
counts), ``labelled`` and ``row`` (0-based data row of the input). Input order is kept.
"""

from __future__ import annotations

import logging
import os
import re
import string
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from zooflow.atomic import atomic_path
from zooflow.ids import ID_COLUMN, float_id_error, read_csv_with_ids
from zooflow.images import image_problem
from zooflow.schema import Schema
from zooflow.vote_checks import id_reasons, is_missing, normalise_ids, tree_reasons, vote_counts

log = logging.getLogger(__name__)


FILE_COLUMN = "file_loc"
LABELLED_COLUMN = "labelled"
ROW_COLUMN = "row"
REJECTED_COLUMNS = [ID_COLUMN, "file", "reason", ROW_COLUMN]

# How many rejected rows the too-many-rejected error quotes.
_MAX_REASONS_QUOTED = 5


class IngestError(RuntimeError):
    """A catalogue that cannot be ingested: unreadable, missing columns, or too many bad rows."""


@dataclass
class IngestResult:
    """Kept and rejected rows of one catalogue; ``len(clean) + len(rejected) == n_input``."""

    clean: pd.DataFrame
    rejected: pd.DataFrame  # id_str, file, reason, row
    n_input: int

    @property
    def rejected_fraction(self) -> float:
        return len(self.rejected) / self.n_input if self.n_input else 0.0


# --- reading and column mapping ------------------------------------------------------------


def read_catalogue(path: str | Path, text_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a CSV (optionally compressed) or parquet catalogue.

    ``text_columns`` are read from CSV as the exact text of each cell, so that ids such as
    ``dr7objid`` (18 digits), ``000123`` or ``NA`` survive instead of passing through float, int
    or missing.
    """
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"catalogue {path} does not exist")
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if suffixes and suffixes[-1] in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if ".csv" in suffixes or ".tsv" in suffixes:
            sep = "\t" if ".tsv" in suffixes else ","
            return read_csv_with_ids(path, id_columns=text_columns, sep=sep)
    except (ValueError, OSError) as err:
        raise IngestError(f"catalogue {path} cannot be read: {err}") from err
    raise IngestError(
        f"catalogue {path}: unknown format {''.join(path.suffixes)!r}; "
        "expected .csv, .csv.gz, .tsv or .parquet"
    )


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


def _check_columns(
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
        fields = _template_fields(file_template)
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


def _template_fields(file_template: str) -> set[str]:
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


# --- per-row checks --------------------------------------------------------------------------


def _image_paths(
    frame: pd.DataFrame,
    ids: list[str | None],
    images_dir: Path,
    id_column: str,
    file_column: str,
    file_template: str | None,
    reasons: list[list[str]],
) -> list[str | None]:
    """Absolute image path per row (None where none can be built); relative paths join images_dir."""
    paths: list[str | None] = []
    if file_column in frame.columns:
        raw_paths = frame[file_column].tolist()
        for row, value in enumerate(raw_paths):
            text = "" if is_missing(value) else str(value).strip()
            if not text:
                reasons[row].append(f"no image path in column {file_column}")
                paths.append(None)
            else:
                paths.append(text)
    else:
        assert file_template is not None  # _check_columns guarantees one or the other
        fields = sorted(_template_fields(file_template) & set(frame.columns))
        records = frame[fields].to_dict("records")
        for row, (record, row_id) in enumerate(zip(records, ids, strict=True)):
            record[id_column] = row_id
            record.setdefault(ID_COLUMN, row_id)
            try:
                paths.append(file_template.format(**record))
            except (KeyError, IndexError, ValueError, TypeError) as err:
                reasons[row].append(f"cannot build image path from file_template: {err}")
                paths.append(None)
    needs_dir = any(p is not None and not os.path.isabs(p) for p in paths)
    if needs_dir and not images_dir.is_dir():
        raise IngestError(f"images_dir {images_dir} is not a directory")
    return [None if p is None else os.path.abspath(images_dir / p) for p in paths]


def _image_reason(path: str) -> str | None:
    """Why this image cannot be used (naming the path), or None."""
    try:
        problem = image_problem(path)
    except Exception as err:  # one odd file (a decompression bomb, say) must not stop ingest
        problem = f"image check failed ({type(err).__name__}: {err})"
    if problem is None:
        return None
    return problem if path in problem else f"{problem}: {path}"


def _image_reasons(paths: list[str | None], threads: int) -> dict[str, str | None]:
    """Check each distinct image once, over ``threads`` (Pillow releases the GIL while decoding)."""
    unique = list(dict.fromkeys(p for p in paths if p is not None))
    if threads == 1 or len(unique) < 2:
        return dict(zip(unique, map(_image_reason, unique), strict=True))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return dict(zip(unique, pool.map(_image_reason, unique), strict=True))


# --- public entry points --------------------------------------------------------------------


def ingest_catalogue(
    catalogue_path: str | Path,
    images_dir: str | Path,
    schema: Schema,
    *,
    column_mapping: Mapping[str, str] | str | None = None,
    id_column: str = ID_COLUMN,
    file_column: str = FILE_COLUMN,
    file_template: str | None = None,
    tree_tolerance: float = 0.1,
    tree_tolerance_votes: float = 1,
    threads: int = 1,
    votes_optional: bool = False,
) -> IngestResult:
    """Check every catalogue row; return the kept rows (clean table) and the rejected ones.

    ``votes_optional`` (a prediction-only run): a catalogue with none of the tree's vote
    columns is read as galaxies nobody has labelled, instead of refused.

    ``column_mapping``: None when the catalogue already uses ``schema.label_cols`` names, a
    dict {catalogue column: schema column}, or the name of a mapping the tree ships
    (``"hart16"`` for the public GZ2 table). ``file_column`` paths are relative to
    ``images_dir`` unless absolute; without that column, ``file_template`` (``"{id_str}.png"``,
    any catalogue column may be named) builds them. Input ``*_total-votes``, ``labelled`` and
    ``row`` columns are replaced by recomputed ones.
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    if tree_tolerance < 0 or tree_tolerance_votes < 0:
        raise ValueError("tree_tolerance and tree_tolerance_votes must be non-negative")
    catalogue_path, images_dir = Path(catalogue_path), Path(images_dir)
    mapping = resolve_column_mapping(schema, column_mapping)
    frame = read_catalogue(catalogue_path, text_columns=(id_column, file_column))
    n_input = len(frame)
    if n_input == 0:
        raise IngestError(f"catalogue {catalogue_path} has no rows")
    if votes_optional and not set(frame.columns) & (set(schema.label_cols) | set(mapping)):
        # A catalogue to predict, not to learn from: every galaxy is unlabelled.
        log.info("ingest %s: no vote columns; every galaxy is unlabelled", catalogue_path)
        frame = frame.assign(**dict.fromkeys(schema.label_cols, np.nan))
        mapping = {}
    _check_columns(frame, schema, mapping, id_column, file_column, file_template, catalogue_path)
    if pd.api.types.is_float_dtype(frame[id_column]):
        raise IngestError(float_id_error(id_column, catalogue_path))

    reasons: list[list[str]] = [[] for _ in range(n_input)]
    ids = normalise_ids(frame[id_column])
    id_reasons(ids, frame[id_column], id_column, reasons)
    paths = _image_paths(frame, ids, images_dir, id_column, file_column, file_template, reasons)
    frame = frame.rename(columns=mapping)
    shown = {ours: theirs for theirs, ours in mapping.items()}  # reasons use the user's names
    counts, usable = vote_counts(frame, schema, reasons, shown)
    tree_reasons(counts, usable, schema, tree_tolerance, tree_tolerance_votes, reasons, shown)
    image_reasons = _image_reasons(paths, threads)
    for row, path in enumerate(paths):
        if path is not None and image_reasons[path] is not None:
            reasons[row].append(image_reasons[path])

    kept = np.array([not r for r in reasons], dtype=bool)
    clean = _clean_table(frame, schema, ids, paths, counts, kept, id_column, file_column)
    rejected_rows = np.flatnonzero(~kept)
    rejected = pd.DataFrame(
        {
            ID_COLUMN: [ids[r] or "" for r in rejected_rows],
            "file": [paths[r] or "" for r in rejected_rows],
            "reason": ["; ".join(reasons[r]) for r in rejected_rows],
            ROW_COLUMN: rejected_rows.astype(np.int64),
        },
        columns=REJECTED_COLUMNS,
    )
    if len(clean) + len(rejected) != n_input:  # bookkeeping guard, kept under python -O
        raise RuntimeError(
            f"ingest lost rows: {n_input} in, {len(clean)} kept + {len(rejected)} rejected"
        )
    log.info(
        "ingest %s: %d rows, %d kept (%d unlabelled), %d rejected",
        catalogue_path,
        n_input,
        len(clean),
        int((~clean[LABELLED_COLUMN]).sum()),
        len(rejected),
    )
    return IngestResult(clean=clean, rejected=rejected, n_input=n_input)


def _clean_table(
    frame: pd.DataFrame,
    schema: Schema,
    ids: list[str | None],
    paths: list[str | None],
    counts: np.ndarray,
    kept: np.ndarray,
    id_column: str,
    file_column: str,
) -> pd.DataFrame:
    replaced = {id_column, file_column, ID_COLUMN, FILE_COLUMN, LABELLED_COLUMN, ROW_COLUMN}
    replaced |= set(schema.label_cols) | set(schema.total_cols)
    extras = [c for c in frame.columns if c not in replaced]
    kept_rows = np.flatnonzero(kept)
    votes = counts[kept].astype(np.int64)
    totals = schema.question_totals(votes).astype(np.int64)
    head = pd.DataFrame(
        {
            ID_COLUMN: pd.Series([ids[r] for r in kept_rows], dtype=object),
            FILE_COLUMN: pd.Series([paths[r] for r in kept_rows], dtype=object),
        }
    )
    tail = pd.DataFrame(
        {
            **{c: votes[:, j] for j, c in enumerate(schema.label_cols)},
            **{c: totals[:, i] for i, c in enumerate(schema.total_cols)},
            LABELLED_COLUMN: votes.sum(axis=1) > 0,
            ROW_COLUMN: kept_rows.astype(np.int64),
        }
    )
    # .loc keeps every carried-through column's dtype exactly as read.
    carried = frame.loc[kept, extras].reset_index(drop=True)
    return pd.concat([head, carried, tail], axis=1)


def write_ingest(
    result: IngestResult,
    clean_path: str | Path,
    rejected_path: str | Path,
    max_rejected_fraction: float,
) -> None:
    """Write ``rejected.csv`` and the clean parquet, then fail if too many rows were rejected.

    Both files are written first so that the user can read why rows were rejected.
    """
    if not 0.0 <= max_rejected_fraction <= 1.0:
        raise ValueError(f"max_rejected_fraction must be in [0, 1], got {max_rejected_fraction}")
    clean_path, rejected_path = Path(clean_path), Path(rejected_path)
    with atomic_path(rejected_path) as temporary:
        result.rejected.to_csv(temporary, index=False)
    with atomic_path(clean_path) as temporary:
        result.clean.to_parquet(temporary, index=False)
    fraction = result.rejected_fraction
    if fraction > max_rejected_fraction:
        quoted = result.rejected.head(_MAX_REASONS_QUOTED)
        examples = "\n".join(
            f"  row {row} ({ID_COLUMN} {ident!r}): {reason}"
            for row, ident, reason in zip(
                quoted[ROW_COLUMN], quoted[ID_COLUMN], quoted["reason"], strict=True
            )
        )
        raise IngestError(
            f"{len(result.rejected)} of {result.n_input} catalogue rows rejected "
            f"({fraction:.1%}), more than max_rejected_fraction={max_rejected_fraction:.1%}. "
            f"Every reason is in {rejected_path}; the first ones:\n{examples}"
        )


def read_catalogue_columns(catalogue_path: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """Columns of a clean catalogue that later stages need: all present, no empty cell, unique ids.

    Errors name the catalogue and the first offending row.
    """
    catalogue_path = Path(catalogue_path)
    try:
        table = pd.read_parquet(catalogue_path, columns=list(columns))
    except (KeyError, ValueError) as err:
        wanted = " and ".join(repr(c) for c in columns)
        raise ValueError(f"{catalogue_path}: the catalogue needs columns {wanted} ({err})") from err
    for column in columns:
        missing = table[column].isna().to_numpy()
        if missing.any():
            raise ValueError(
                f"{catalogue_path}: row {int(np.flatnonzero(missing)[0])} has no {column}"
            )
    duplicated = table["id_str"].astype(str).duplicated(keep=False).to_numpy()
    if duplicated.any():
        rows = np.flatnonzero(duplicated)[:5].tolist()
        raise ValueError(
            f"{catalogue_path}: id_str must be unique; rows {rows} share "
            f"{table['id_str'].iloc[rows[0]]!r}"
        )
    return table
